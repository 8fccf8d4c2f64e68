"""Per small model and pathology flag (set by the generator on the stored answer: "empty",
"repetition_loop", "prompt_echo", "truncated", "language_mismatch"): answers flagged out of
the model's answers."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval_metrics.registry import statistic
from harmeval_metrics.study_figures import Study


@dataclass(frozen=True, kw_only=True)
class PathologyRate:
    model: str
    flag: str
    n_flagged: int
    n_answers: int


@statistic(
    name="pathology_rates",
    report="ranking",
    into="pathologies",
    what="per model and pathology flag (empty, repetition loop, …): answers flagged",
)
def pathology_rates(study: Study) -> list[PathologyRate]:
    return [
        PathologyRate(model=model, flag=flag, n_flagged=k, n_answers=n)
        for model, (n, counts) in study.flags.items()
        for flag, k in sorted(counts.items())
    ]
