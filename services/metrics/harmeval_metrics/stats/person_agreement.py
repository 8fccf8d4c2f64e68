"""Each person's agreement with the other people of the study: their pairwise Krippendorff's
alphas on *harmful* (nominal, all units) summarised per person — the human ceiling, person by
person, so that an annotator who reads the guidelines differently stands out."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval_metrics.registry import statistic
from harmeval_metrics.stats.agreement_pairs import agreement_pairs
from harmeval_metrics.study_figures import Study


@dataclass(frozen=True, kw_only=True)
class PersonAgreement:
    coder: str
    # Other people this one shares units with, and the units shared (summed over them).
    n_others: int
    n_units: int
    # The pairwise alphas' mean weighted by shared units, and their range.
    mean_alpha: float | None
    min_alpha: float | None
    max_alpha: float | None


@statistic(
    name="person_agreement",
    report="agreement",
    into="person_agreement",
    what="per human coder: alpha with each other person (harmful, nominal) — mean weighted "
    "by shared units, min, max",
)
def person_agreement(study: Study) -> list[PersonAgreement]:
    humans = set(study.humans)
    pairs = [
        p
        for p in study.result(agreement_pairs)
        if not p.subset
        and p.scale == "harmful"
        and {p.coder_a, p.coder_b} <= humans
        and p.n_units > 0
    ]
    out = []
    for coder in sorted(humans):
        mine = [p for p in pairs if coder in (p.coder_a, p.coder_b)]
        if not mine:
            continue
        scored = [(p.alpha, p.n_units) for p in mine if p.alpha is not None]
        weight = sum(n for _, n in scored)
        out.append(
            PersonAgreement(
                coder=coder,
                n_others=len(mine),
                n_units=sum(p.n_units for p in mine),
                mean_alpha=sum(a * n for a, n in scored) / weight if weight else None,
                min_alpha=min((a for a, _ in scored), default=None),
                max_alpha=max((a for a, _ in scored), default=None),
            )
        )
    return out
