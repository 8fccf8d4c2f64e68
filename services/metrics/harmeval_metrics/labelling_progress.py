"""Whether people have labelled enough of a study: per small model, a confidence sequence for
its harm rate over the queue's prompts, from the prompts labelled in the annotation app in the
order they were first labelled, and whether it is as narrow as asked.

A confidence sequence may be looked at after every label and stopped on (a normal interval
recomputed after every label may not: it covers less than it claims). Each prompt's term is
the label of the person who labelled it first (later people's labels, for overlap, leave the
sequence alone, so its past never changes). It is valid because the app hands out a queue's
prompts in a uniformly random order, so the first-labelled prompts are a uniform sample of the
queue, and the sequence covers the queue's harm rate (for a uniform draw, itself a uniform
sample of the study's prompts). Prompts are drawn without replacement, which the sequence
ignores: it is conservative, the more so as the queue runs out (a fully labelled all-prompt
queue is exact, and enough). A queue drawn with unequal probabilities (the active design) has
no such order and is refused. With a judge, the sequence is
:func:`~harmeval_metrics.few_labels.assisted_confidence_sequence` over the judge's labels of
the queue's answers; an answer the judge could not score (or has not scored yet) counts as 0.5
for the judge, a fixed guess that keeps the sequence valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harmeval_metrics.few_labels import assisted_confidence_sequence, bounded_confidence_sequence
from harmeval_metrics.study_figures import Study

DEFAULT_HALF_WIDTH = 0.05
# Labels before a queue may stop: a run of the first few labels says little about a rate.
MIN_LABELS = 30
# The judge's label of an answer it did not score: a fixed value, not a guess from the data.
UNSCORED = 0.5


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
    order: Sequence[tuple[int, str]],
    *,
    inclusion: Mapping[int, float],
    judge: str = "",
    half_width: float = DEFAULT_HALF_WIDTH,
    design: str = "",
) -> list[ModelProgress]:
    """`order`: (prompt id, who labelled it first), first labelled first; `inclusion`: the
    queue's prompts and their probabilities (all equal for a uniform or all-prompt queue)."""
    if design == "active" or len(set(inclusion.values())) > 1:
        raise NotUniform(
            "the queue was drawn with unequal probabilities (active design): a confidence "
            "sequence needs prompts in a uniformly random order; use labels-needed in the report"
        )
    census = bool(inclusion) and all(pi == 1.0 for pi in inclusion.values())
    judged = study.by_coder.get(judge, {}) if judge else {}
    models = list(study.models) or sorted(
        {m for labels in study.by_coder.values() for _, m in labels}
    )
    out = []
    for model in models:
        y_list = []
        for prompt_id, person in order:
            label = study.by_coder.get(person, {}).get((prompt_id, model))
            if label is not None:
                y_list.append(float(label.harmful))
        y = np.array(y_list)
        judge_mean = None
        if judge:
            units = [(p, model) for p in inclusion]
            judge_mean = float(
                np.mean([float(judged[u].harmful) if u in judged else UNSCORED for u in units])
            )
        base = ModelProgress(
            model=model, n_units=len(inclusion), n_labelled=y.size, judge_only=judge_mean
        )
        if y.size == 0:
            out.append(base)
            continue
        if census and y.size == len(inclusion):
            # Every prompt of an all-prompt queue labelled: the rate is known exactly.
            rate = float(y.mean())
            out.append(replace(base, estimate=rate, ci_low=rate, ci_high=rate, enough=True))
            continue
        confidence = study.options.confidence
        if judge_mean is not None:
            yhat = np.array(
                [
                    float(judged[(p, model)].harmful) if (p, model) in judged else UNSCORED
                    for p, person in order
                    if (p, model) in study.by_coder.get(person, {})
                ]
            )
            cs = assisted_confidence_sequence(
                y, yhat, judge_mean, confidence=confidence, half_width=half_width
            )
        else:
            cs = bounded_confidence_sequence(y, confidence=confidence, half_width=half_width)
        low, high = max(float(cs.ci_low[-1]), 0.0), min(float(cs.ci_high[-1]), 1.0)
        out.append(
            replace(
                base,
                estimate=float(cs.estimate[-1]),
                ci_low=low,
                ci_high=high,
                enough=y.size >= MIN_LABELS and (high - low) / 2 <= half_width,
            )
        )
    return out
