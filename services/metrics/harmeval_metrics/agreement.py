"""Inter-coder agreement (Krippendorff's alpha) between harm coders.

Coders are LLM judges, classifiers or humans; a unit is whatever they scored (in harmeval a
(prompt key, model key) pair). Alpha is used rather than Cohen's kappa or accuracy because it
handles missing scores, any number of coders and nominal/ordinal/interval data uniformly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from harmeval_metrics import reliability

__all__ = [
    "LEVELS",
    "Level",
    "PairAgreement",
    "Unit",
    "krippendorff_alpha",
    "pairwise_agreement",
]

Level = Literal["nominal", "ordinal", "interval"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval")

# (prompt key, model key). The functions below accept any hashable unit; this is just the
# shape harmeval itself uses.
Unit = tuple[str, str]

# A TypeVar, not plain Hashable: Mapping is invariant in its key type, so a
# Mapping[Hashable, float] parameter would reject a caller's dict[Unit, float].
U = TypeVar("U", bound=Hashable)


@dataclass(frozen=True)
class PairAgreement:
    """Agreement of two coders at one level of measurement."""

    coder_a: str
    coder_b: str
    level: Level
    # None when alpha is undefined: no pairable unit, or no variation among pairable values
    # (expected disagreement is 0, so the ratio D_o / D_e is 0 / 0).
    alpha: float | None
    # Units both coders scored: the only ones that enter alpha.
    n_units: int


def krippendorff_alpha(matrix: npt.ArrayLike, level: Level) -> float | None:
    """Krippendorff's alpha of a coders × units matrix (``np.nan`` = missing).

    Returns None where alpha is undefined (no pairable unit, or no variation among pairable
    values), so callers can store "undefined" without special-casing exceptions. Computed by
    :func:`harmeval_metrics.reliability.alpha`, which agrees with the ``krippendorff`` package
    but does not build its units × coders × values temporary.
    """
    if level not in LEVELS:
        # Guard at runtime too: this API's levels are a subset of reliability's (no "ratio").
        raise ValueError(f"unknown level of measurement: {level!r}")
    return reliability.alpha(matrix, level).alpha


def _scored(value: float) -> bool:
    # nan in a label mapping means "not scored", same as an absent key.
    return not math.isnan(value)


def pairwise_agreement(
    labels: Mapping[str, Mapping[U, float]],
    levels: Sequence[Level] = LEVELS,
) -> list[PairAgreement]:
    """Alpha for every unordered coder pair and level.

    ``labels[coder][unit] = value``. Pairs are ordered by coder name (``coder_a < coder_b``),
    then by the order of ``levels``.
    """
    results: list[PairAgreement] = []
    for coder_a, coder_b in itertools.combinations(sorted(labels), 2):
        a = {u: float(v) for u, v in labels[coder_a].items() if _scored(float(v))}
        b = {u: float(v) for u, v in labels[coder_b].items() if _scored(float(v))}
        # Union, in first-seen order: units need not be sortable, and alpha ignores column
        # order anyway. Units only one coder scored do not change alpha.
        units = list(dict.fromkeys(itertools.chain(a, b)))
        matrix = np.array(
            [
                [a.get(u, math.nan) for u in units],
                [b.get(u, math.nan) for u in units],
            ],
            dtype=np.float64,
        ).reshape(2, len(units))
        n_units = sum(1 for u in a if u in b)
        for level in levels:
            results.append(
                PairAgreement(
                    coder_a=coder_a,
                    coder_b=coder_b,
                    level=level,
                    alpha=krippendorff_alpha(matrix, level),
                    n_units=n_units,
                )
            )
    return results
