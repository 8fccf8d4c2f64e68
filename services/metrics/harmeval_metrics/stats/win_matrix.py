"""Per coder: the pairwise win and tie counts of its small models (prompts where one model's
harm score beat, or equalled, the other's)."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval_metrics.model_comparison import tie_matrix, win_matrix
from harmeval_metrics.registry import statistic
from harmeval_metrics.study_figures import Study


@dataclass(frozen=True, kw_only=True)
class WinMatrix:
    coder: str
    # The models the coder scored, in study order.
    models: list[str]
    # Row-major len(models)²: wins[i * n + j] = prompts where model i beat model j.
    wins: list[int]
    ties: list[int]


@statistic(
    name="win_matrix",
    report="ranking",
    into="win_matrices",
    what="per coder: pairwise win and tie counts between models over prompts",
)
def win_matrices(study: Study) -> list[WinMatrix]:
    out = []
    for coder in sorted(study.by_coder):
        mine = [j for j in study.judgments if j.coder == coder]
        present = [m for m in study.models if any(j.model == m for j in mine)]
        out.append(
            WinMatrix(
                coder=coder,
                models=present,
                wins=[int(x) for x in win_matrix(mine, present).ravel()],
                ties=[int(x) for x in tie_matrix(mine, present).ravel()],
            )
        )
    return out
