"""Per coder pair: Kendall's tau-b between the coders' Bradley–Terry strengths of the models
both scored (ties kept): do they order the small models alike?"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from harmeval_metrics.model_comparison import rank_stability as stability
from harmeval_metrics.registry import statistic
from harmeval_metrics.stats.bradley_terry import bradley_terry
from harmeval_metrics.study_figures import Study


@dataclass(frozen=True, kw_only=True)
class RankStability:
    coder_a: str
    coder_b: str
    # None when undefined (fewer than two shared models, or either coder's strengths all tied).
    kendall_tau: float | None


@statistic(
    name="rank_stability",
    report="ranking",
    into="stability",
    what="per coder pair: Kendall's tau-b of the coders' Bradley–Terry strengths",
)
def rank_stability(study: Study) -> list[RankStability]:
    strengths: dict[str, dict[str, float]] = defaultdict(dict)
    for s in study.result(bradley_terry):
        strengths[s.coder][s.model] = s.strength
    return [
        RankStability(coder_a=a, coder_b=b, kendall_tau=tau) for a, b, tau in stability(strengths)
    ]
