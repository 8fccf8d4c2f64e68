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

import krippendorff
import numpy as np
import numpy.typing as npt

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

    Returns None where alpha is undefined instead of letting the ``krippendorff`` package raise
    or return nan, so callers can store "undefined" without special-casing exceptions.
    """
    if level not in LEVELS:
        # Guard at runtime too: the package would silently accept e.g. "ratio".
        raise ValueError(f"unknown level of measurement: {level!r}")
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D coders × units matrix, got shape {data.shape}")
    if np.isinf(data).any():
        # inf would be taken as a real value and poison interval/ordinal distances.
        raise ValueError("matrix contains infinite values; use np.nan for missing scores")

    # Alpha only counts units that at least two coders scored; check definedness ourselves
    # rather than matching the package's error messages.
    present = ~np.isnan(data)
    pairable = present.sum(axis=0) >= 2
    if not pairable.any():
        return None
    pairable_values = data[:, pairable][present[:, pairable]]
    if np.unique(pairable_values).size < 2:
        return None

    # The package divides by expected disagreement; silence numpy so a degenerate case
    # surfaces as nan (mapped to None below) rather than as a RuntimeWarning.
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    return value if math.isfinite(value) else None


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
