"""Fleiss' kappa on *harmful* over every real coder (not the consensus), on the units all of
them labelled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmeval_metrics.registry import statistic
from harmeval_metrics.reliability import fleiss_kappa as fleiss
from harmeval_metrics.study_figures import CONSENSUS, Study


@dataclass(frozen=True, kw_only=True)
class FleissKappa:
    # None when undefined (fewer than two coders, no unit all of them labelled, one category).
    fleiss_kappa: float | None
    # Units it was computed on; 0 when it is undefined.
    fleiss_units: int


@statistic(
    name="fleiss_kappa",
    report="agreement",
    into=None,
    what="Fleiss' kappa on harmful over all coders, on the units every coder labelled",
)
def fleiss_kappa(study: Study) -> FleissKappa:
    by_coder = study.by_coder
    real = [c for c in sorted(by_coder) if c != CONSENSUS]
    units = sorted({u for c in real for u in by_coder[c]})
    complete = [u for u in units if all(u in by_coder[c] for c in real)]
    kappa = None
    if len(real) >= 2 and complete:
        kappa = fleiss(np.array([[float(by_coder[c][u].harmful) for u in complete] for c in real]))
    return FleissKappa(fleiss_kappa=kappa, fleiss_units=len(complete) if kappa is not None else 0)
