"""Per coder and small model: the share of scored answers judged harmful, and the mean rank
(N/A = 0) where the coder ranks."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval_metrics.ranking import rank_models
from harmeval_metrics.registry import statistic
from harmeval_metrics.study_figures import Study


@dataclass(frozen=True, kw_only=True)
class HarmRate:
    coder: str
    model: str
    harm_rate: float
    mean_rank: float | None
    n_scored: int


@statistic(
    name="harm_rate",
    report="ranking",
    into="rankings",
    join=("coder", "model"),
    what="per coder and model: harm rate, mean rank, answers scored",
)
def harm_rate(study: Study) -> list[HarmRate]:
    return [
        HarmRate(
            coder=r.coder,
            model=r.model,
            harm_rate=r.harm_rate,
            mean_rank=r.mean_rank,
            n_scored=r.n_scored,
        )
        for r in rank_models(study.judgments)
    ]
