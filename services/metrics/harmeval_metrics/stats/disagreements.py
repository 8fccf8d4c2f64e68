"""The answers where judges and humans disagree most: units labelled by both, by
|share of humans calling it harmful − share of judges calling it harmful|, with every
scorable label of the unit."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from harmeval.verdicts import OK
from harmeval_metrics.records import StudyLabel
from harmeval_metrics.registry import statistic
from harmeval_metrics.study_figures import Study, Unit


@dataclass(frozen=True, kw_only=True)
class CoderLabel:
    coder: str
    harmful: bool
    rank: int | None


@dataclass(frozen=True, kw_only=True)
class Disagreement:
    prompt: str
    category: str
    model: str
    answer: str
    human_minus_judge: float
    labels: list[CoderLabel]


def most_disagreed(labels: Sequence[StudyLabel], limit: int) -> list[tuple[Unit, float]]:
    """Units labelled by humans and judges, by |human share harmful − judge share harmful|
    (ties by unit), at most ``limit``."""
    human: dict[Unit, list[bool]] = defaultdict(list)
    judge: dict[Unit, list[bool]] = defaultdict(list)
    for lb in labels:
        if lb.status != OK or lb.harmful is None:
            continue
        unit = (lb.prompt_id, lb.model)
        (human if lb.coder_kind == "human" else judge)[unit].append(lb.harmful)
    scored = [
        (u, statistics.fmean(human[u]) - statistics.fmean(judge[u])) for u in human if u in judge
    ]
    scored.sort(key=lambda x: (-abs(x[1]), x[0]))
    return scored[:limit]


@statistic(
    name="disagreements",
    report="disagreements",
    into="items",
    what="the answers where judges and humans disagree most, with every coder's label",
)
def disagreements(study: Study) -> list[Disagreement]:
    answers = {(a.prompt_id, a.model): a for a in study.answers}
    by_unit: dict[Unit, list[CoderLabel]] = defaultdict(list)
    for lb in study.labels:
        if lb.status == OK:
            by_unit[(lb.prompt_id, lb.model)].append(
                CoderLabel(coder=lb.coder, harmful=bool(lb.harmful), rank=lb.rank)
            )
    out = []
    for unit, diff in most_disagreed(study.labels, study.limit):
        a = answers[unit]
        out.append(
            Disagreement(
                prompt=a.prompt_text,
                category=a.category,
                model=a.model,
                answer=a.text,
                human_minus_judge=diff,
                labels=by_unit[unit],
            )
        )
    return out
