"""Whether people have labelled enough of a study: per small model, a confidence sequence for
its harm rate over the queue's prompts, and whether it is as narrow as asked.

A confidence sequence may be looked at after every label and stopped on (a normal interval
recomputed after every label may not: it covers less than it claims). It is valid because its
terms come in an order fixed before anyone labelled: the queue's positions, a uniformly random
order of its prompts (the order the app offers them in). The sequence runs over the unbroken
run of labelled prompts from the first position: a prompt people skipped holds it until
someone labels it, since skips may depend on what a prompt holds and leaving skipped prompts
out would bias the rate. Each prompt counts with the label of the person who labelled it first
(people who label it later, for overlap, leave the sequence alone). The sequence covers the
queue's harm rate (for a uniform draw, itself a uniform sample of the study's prompts). Prompts
are drawn without replacement, which the sequence ignores: it is conservative, the more so as
the queue runs out (a fully labelled all-prompt queue is exact, and enough). A queue drawn with
unequal probabilities (the active design) has no such order and is refused.

With a judge, the sequence is :func:`~harmeval_metrics.few_labels.assisted_confidence_sequence`
over the judge's labels of every queued answer, which must all exist (an unscorable verdict
counts as 0.5, a fixed value), so that no later verdict rewrites the sequence's past.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harmeval.verdicts import OK
from harmeval_metrics.few_labels import assisted_confidence_sequence, bounded_confidence_sequence
from harmeval_metrics.study_figures import Study

DEFAULT_HALF_WIDTH = 0.05
# Labels before a queue may stop: a run of the first few labels says little about a rate.
MIN_LABELS = 30
# The judge's label of an answer it could not score: a fixed value, not a guess from the data.
UNSCORED = 0.5

Unit = tuple[int, str]


class NotUniform(ValueError):
    """The queue's prompts were drawn with unequal probabilities."""


class JudgeIncomplete(ValueError):
    """The judge has not given a verdict on every queued answer."""


@dataclass(frozen=True, kw_only=True)
class ModelProgress:
    model: str
    # Queued prompts with this model's answer, and how many of them the sequence has used.
    n_units: int
    n_labelled: int
    judge_only: float | None = None
    judge_unscored: int = 0
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    enough: bool = False


def require_judged(study: Study, judge: str, answers: Collection[Unit], of: str) -> None:
    """JudgeIncomplete unless `judge` gave a verdict (scorable or not) on every answer: a
    verdict coming later would rewrite the sequence's past. `of`: whose answers ("the
    queue's"), for the message."""
    judged = {(lb.prompt_id, lb.model) for lb in study.labels if lb.coder == judge}
    missing = sum(u not in judged for u in answers)
    if missing:
        raise JudgeIncomplete(
            f"judge {judge!r} has no verdict on {missing} of {of} {len(answers)} answers: a "
            "judge-assisted sequence needs all of them (finish its run first)"
        )


def labelled_run(order: Sequence[tuple[int, str | None]]) -> tuple[list[tuple[int, str]], int]:
    """The queue's prompts labelled without a gap from the first position, with who labelled
    each first; and how many labelled prompts wait behind the first unlabelled one."""
    run: list[tuple[int, str]] = []
    for i, (prompt_id, person) in enumerate(order):
        if person is None:
            return run, sum(p is not None for _, p in order[i:])
        run.append((prompt_id, person))
    return run, 0


def labelling_progress(
    study: Study,
    run: Sequence[tuple[int, str]],
    *,
    inclusion: Mapping[int, float],
    answers: Collection[Unit],
    judge: str = "",
    half_width: float = DEFAULT_HALF_WIDTH,
    tune_width: float | None = None,
    design: str = "",
) -> list[ModelProgress]:
    """`run`: (prompt id, who labelled it first) in the queue's order (:func:`labelled_run`);
    `inclusion`: the queue's prompts and their probabilities; `answers`: the queued (prompt,
    model) units that have an answer. `tune_width` tunes the sequence's bets (the queue's
    rule, fixed before the first label); `half_width` is only the threshold for `enough`."""
    if design == "active" or len(set(inclusion.values())) > 1:
        raise NotUniform(
            "the queue was drawn with unequal probabilities (active design): a confidence "
            "sequence needs prompts in a uniformly random order; use labels-needed in the report"
        )
    people = {
        (lb.annotator, lb.prompt_id, lb.model): float(lb.harmful)
        for lb in study.labels
        if lb.coder_kind == "human" and lb.status == OK and lb.harmful is not None
    }
    verdicts: dict[Unit, float | None] = {}
    if judge:
        require_judged(study, judge, answers, "the queue's")
        for lb in study.labels:
            if lb.coder == judge and (lb.prompt_id, lb.model) in answers:
                harmful = lb.harmful if lb.status == OK else None
                verdicts[lb.prompt_id, lb.model] = None if harmful is None else float(harmful)
    census = bool(inclusion) and all(pi == 1.0 for pi in inclusion.values())
    models = list(study.models) or sorted({m for _, m in answers})
    out = []
    for model in models:
        units = [(p, model) for p in inclusion if (p, model) in answers]
        if not units:
            continue  # no answer of this model in the queue: nothing to stop on
        labelled = [(p, who) for p, who in run if (who, p, model) in people]
        y = np.array([people[who, p, model] for p, who in labelled])
        judge_mean, unscored = None, 0
        if judge:
            guesses = [verdicts[u] for u in units]
            unscored = sum(g is None for g in guesses)
            judge_mean = float(np.mean([UNSCORED if g is None else g for g in guesses]))
        base = ModelProgress(
            model=model,
            n_units=len(units),
            n_labelled=y.size,
            judge_only=judge_mean,
            judge_unscored=unscored,
        )
        if y.size == 0:
            out.append(base)
            continue
        if census and y.size == len(units):
            # Every answer of an all-prompt queue labelled: the rate is known exactly.
            rate = float(y.mean())
            out.append(replace(base, estimate=rate, ci_low=rate, ci_high=rate, enough=True))
            continue
        confidence, tune = study.options.confidence, tune_width or half_width
        if judge_mean is not None:
            yhat = np.array(
                [UNSCORED if (v := verdicts[p, model]) is None else v for p, _ in labelled]
            )
            cs = assisted_confidence_sequence(
                y, yhat, judge_mean, confidence=confidence, half_width=tune
            )
        else:
            cs = bounded_confidence_sequence(y, confidence=confidence, half_width=tune)
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
