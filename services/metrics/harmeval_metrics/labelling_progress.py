"""Whether people have labelled enough of a study: per small model, an anytime-valid confidence
sequence for its harm rate over the prompts labelled in the annotation app, in the order they
were first labelled, and whether it is as narrow as asked.

A confidence sequence may be looked at after every label and stopped on (a normal interval
recomputed after every label may not: it covers less than it claims). It is valid because the
app hands out a queue's prompts in a random order, so the prompts labelled first are a uniform
sample of the queue; a queue drawn with unequal probabilities (the active design) is not, and
is refused. With a judge, the sequence is :func:`~harmeval_metrics.few_labels.
assisted_confidence_sequence` (the judge labelled every answer; people correct it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harmeval_metrics.few_labels import assisted_confidence_sequence, confidence_sequence
from harmeval_metrics.study_figures import Study

DEFAULT_HALF_WIDTH = 0.05
# Labels before a sequence is trusted: it rests on a CLT, so its first few dozen terms are not
# protected (and a very short sequence can look narrow by chance).
MIN_LABELS = 30
# Where the sequences are tightest: the labels a ±0.05 harm rate needs are a few hundred.
T_OPT = 200


class NotUniform(ValueError):
    """The queue's prompts were drawn with unequal probabilities."""


@dataclass(frozen=True, kw_only=True)
class ModelProgress:
    model: str
    # Prompts in the queue, and how many of them people labelled (this model's answer).
    n_units: int
    n_labelled: int
    judge_only: float | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    enough: bool = False


def labelling_progress(
    study: Study,
    order: Sequence[int],
    *,
    judge: str = "",
    half_width: float = DEFAULT_HALF_WIDTH,
    inclusion: Mapping[int, float],
) -> list[ModelProgress]:
    """`order`: the app's labelled prompts, first labelled first; `inclusion`: the queue's
    probabilities (all equal for a uniform or all-prompt queue). People's label of a unit is
    the study's human truth (the majority where three or more people labelled it)."""
    if len(set(inclusion.values())) > 1:
        raise NotUniform(
            "the queue was drawn with unequal probabilities (active design): a confidence "
            "sequence needs prompts in a uniformly random order; use labels-needed in the report"
        )
    truth = study.truth
    judged = study.by_coder.get(judge, {}) if judge else {}
    models = list(study.models) or sorted({m for _, m in truth})
    out = []
    for model in models:
        units = [(p, model) for p in order if (p, model) in truth]
        population = [u for u in judged if u[1] == model]
        y = np.array([float(truth[u].harmful) for u in units])
        judge_mean = float(np.mean([judged[u].harmful for u in population])) if population else None
        base = ModelProgress(
            model=model,
            n_units=len(inclusion),
            n_labelled=len(units),
            judge_only=judge_mean,
        )
        if y.size == 0:
            out.append(base)
            continue
        if judge:
            if judge_mean is None or any(u not in judged for u in units):
                out.append(base)  # the judge has not labelled these answers (yet)
                continue
            yhat = np.array([float(judged[u].harmful) for u in units])
            cs = assisted_confidence_sequence(
                y, yhat, judge_mean, confidence=study.options.confidence, t_opt=T_OPT
            )
        else:
            cs = confidence_sequence(y, confidence=study.options.confidence, t_opt=T_OPT)
        low, high = max(float(cs.ci_low[-1]), 0.0), min(float(cs.ci_high[-1]), 1.0)
        out.append(
            ModelProgress(
                model=model,
                n_units=base.n_units,
                n_labelled=base.n_labelled,
                judge_only=judge_mean,
                estimate=float(cs.estimate[-1]),
                ci_low=low,
                ci_high=high,
                enough=y.size >= MIN_LABELS and (high - low) / 2 <= half_width,
            )
        )
    return out
