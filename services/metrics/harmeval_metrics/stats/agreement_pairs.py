"""Agreement of every pair of coders (the human consensus included): Krippendorff's alpha with
a bootstrap CI and Cohen's kappa on *harmful* (nominal), and, where both coders rank, alpha and
Cohen's kappa on the ranks at three levels with Kendall's tau-b within prompts; over all units
and over each breakdown subset (category or model)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harmeval_metrics.registry import statistic
from harmeval_metrics.reliability import Level, alpha, cohen_kappa, kendall_tau_b_within_groups
from harmeval_metrics.study_figures import Label, Options, Study, Unit

# Cohen's kappa beside each alpha level: unweighted for categories, linear weights for ordered
# ranks, quadratic weights for interval-like ranks (quadratic kappa ~ interval alpha).
KAPPA_WEIGHTS: dict[str, Literal["none", "linear", "quadratic"]] = {
    "nominal": "none",
    "ordinal": "linear",
    "interval": "quadratic",
}
RANK_LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval")


@dataclass(frozen=True, kw_only=True)
class PairAgreement:
    coder_a: str
    coder_b: str
    level: Level
    # "harmful" (yes/no) or "rank".
    scale: str
    # Units both coders labelled.
    n_units: int
    alpha: float | None
    ci_low: float | None
    ci_high: float | None
    # "" for all units, else e.g. "category=privacy" or "model=gemma-greedy".
    subset: str
    cohen_kappa: float | None
    # Ranks only: mean tau-b within prompts, and the prompts it is defined on.
    kendall_tau_b: float | None = None
    n_tau_prompts: int = 0


def _pair_matrix(a: dict[Unit, float], b: dict[Unit, float]) -> tuple[np.ndarray, int]:
    units = sorted(set(a) | set(b))
    matrix = np.array(
        [[a.get(u, np.nan) for u in units], [b.get(u, np.nan) for u in units]], dtype=float
    )
    return matrix, len(set(a) & set(b))


def _pair_rows(
    a: str, b: str, la: dict[Unit, Label], lb: dict[Unit, Label], options: Options, subset: str
) -> list[PairAgreement]:
    ha = {u: float(x.harmful) for u, x in la.items()}
    hb = {u: float(x.harmful) for u, x in lb.items()}
    matrix, shared = _pair_matrix(ha, hb)
    res = alpha(
        matrix,
        "nominal",
        n_bootstrap=options.bootstrap,
        confidence=options.confidence,
        seed=options.seed,
    )
    rows = [
        PairAgreement(
            coder_a=a,
            coder_b=b,
            level="nominal",
            scale="harmful",
            n_units=shared,
            alpha=res.alpha,
            ci_low=res.ci_low,
            ci_high=res.ci_high,
            subset=subset,
            cohen_kappa=cohen_kappa(matrix[0], matrix[1]),
        )
    ]
    ra = {u: float(x.rank) for u, x in la.items() if x.rank is not None}
    rb = {u: float(x.rank) for u, x in lb.items() if x.rank is not None}
    if ra and rb:
        matrix, shared = _pair_matrix(ra, rb)
        tau, n_tau = kendall_tau_b_within_groups(ra, rb)
        for level in RANK_LEVELS:
            res = alpha(
                matrix,
                level,
                n_bootstrap=options.bootstrap,
                confidence=options.confidence,
                seed=options.seed,
            )
            rows.append(
                PairAgreement(
                    coder_a=a,
                    coder_b=b,
                    level=level,
                    scale="rank",
                    n_units=shared,
                    alpha=res.alpha,
                    ci_low=res.ci_low,
                    ci_high=res.ci_high,
                    subset=subset,
                    cohen_kappa=cohen_kappa(matrix[0], matrix[1], weights=KAPPA_WEIGHTS[level]),
                    kendall_tau_b=tau,
                    n_tau_prompts=n_tau,
                )
            )
    return rows


def _model_of(unit: Unit) -> str:
    return unit[1]


def _matcher(key: Callable[[Unit], str], value: str) -> Callable[[Unit], bool]:
    return lambda unit: key(unit) == value


def _subsets(study: Study) -> list[tuple[str, Callable[[Unit], bool]]]:
    subsets: list[tuple[str, Callable[[Unit], bool]]] = [("", lambda u: True)]
    category_of = {(lb.prompt_id, lb.model): lb.category for lb in study.labels}
    for kind in study.breakdown:
        key = category_of.__getitem__ if kind == "category" else _model_of
        for value in sorted({key(u) for u in category_of}):
            subsets.append((f"{kind}={value}", _matcher(key, value)))
    return subsets


@statistic(
    name="agreement_pairs",
    report="agreement",
    into="pairs",
    what="per coder pair and subset: Krippendorff's alpha (CI), Cohen's kappa, "
    "Kendall's tau-b within prompts",
)
def agreement_pairs(study: Study) -> list[PairAgreement]:
    by_coder = study.agreement_coders
    coders = sorted(by_coder)
    pairs: list[PairAgreement] = []
    for subset, keep in _subsets(study):
        scoped = {c: {u: x for u, x in by_coder[c].items() if keep(u)} for c in coders}
        for i, a in enumerate(coders):
            for b in coders[i + 1 :]:
                pairs += _pair_rows(a, b, scoped[a], scoped[b], study.options, subset)
    return pairs
