"""Reliability statistics between coders: Krippendorff's alpha with a bootstrap over units,
Cohen's kappa, Fleiss' kappa and Kendall's tau-b (of two score lists, and within groups). This is
the package's one Kendall tau-b: ``model_comparison.rank_stability`` uses it too.

Alpha is written as a sum of per-unit contributions to the coincidence matrix, so that a
bootstrap over units only re-weights precomputed per-unit quantities instead of recomputing
alpha from raw data B times. For a coders × units matrix with U pairable units, V distinct
values and M coders:

* the point estimate costs O(U·M²) plus O(V) (O(V²) at the ratio level);
* the bootstrap groups units into "types" (units holding the same multiset of values are
  interchangeable), draws each resample's type counts at once (a multinomial draw over types
  when there are few of them, else index arrays counted with bincount) and evaluates alpha
  for a chunk of resamples with a few small matrix products. When V is too large for that
  (e.g. ordinal ranks of continuous scores) it falls back to re-weighting per resample.

Reference: Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "LEVELS",
    "AlphaResult",
    "Level",
    "alpha",
    "cohen_kappa",
    "fleiss_kappa",
    "kendall_tau_b",
    "kendall_tau_b_within_groups",
]

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

G = TypeVar("G", bound=Hashable)
I = TypeVar("I", bound=Hashable)  # noqa: E741 - "item", next to G for "group"

# Elements per temporary array in the bootstrap (float64: 32 MiB); bounds memory whatever U or B.
_CHUNK_ELEMENTS = 1 << 22
# The grouped bootstrap keeps per-type features of V (V² for ordinal) columns; past this many
# elements the per-resample fallback is cheaper than the features themselves.
_MAX_FEATURE_ELEMENTS = 1 << 23


@dataclass(frozen=True, kw_only=True)
class AlphaResult:
    """Krippendorff's alpha of one coders × units matrix, with an optional bootstrap CI."""

    # None when undefined: no pairable unit, or no variation among pairable values (D_e = 0).
    alpha: float | None
    # Percentile bootstrap interval over units; None without bootstrap, when alpha is
    # undefined, or when no resample had a defined alpha.
    ci_low: float | None
    ci_high: float | None
    # Units with >= 2 values: the only ones that enter alpha (and the ones resampled).
    n_units: int
    # Coders with at least one value anywhere in the matrix.
    n_coders: int
    # Values in pairable units.
    n_values: int
    # Resamples whose alpha was defined, i.e. those the CI is taken from (0 without bootstrap).
    n_bootstrap: int


@dataclass(frozen=True, kw_only=True)
class _Pairable:
    """Pairable units, each value replaced by its index in the sorted value domain."""

    codes: IntArray  # (U, M); -1 = missing
    domain: FloatArray  # (V,) sorted distinct pairable values
    n_u: FloatArray  # (U,) values per unit, all >= 2
    lo: IntArray  # (U,) smallest code in each unit
    hi: IntArray  # (U,) largest code in each unit
    flat_codes: IntArray  # codes of all present values, row-major
    flat_units: IntArray  # unit of each of those values


def alpha(
    matrix: npt.ArrayLike,
    level: Level,
    *,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> AlphaResult:
    """Krippendorff's alpha of a coders × units matrix (``np.nan`` = missing).

    Values are numbers (category codes at the nominal level; ranks are taken of the observed
    values at the ordinal level). With ``n_bootstrap`` > 0, pairable units are resampled with
    replacement that many times, using a ``numpy`` Generator seeded with ``seed``; resamples
    whose alpha is undefined (a single distinct value) are skipped and the CI is the central
    ``confidence`` percentile interval of the rest.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level of measurement: {level!r}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    data = _as_matrix(matrix)

    present = ~np.isnan(data)
    n_coders = int(present.any(axis=1).sum())
    pairable = present.sum(axis=0) >= 2
    prep = _prepare(data[:, pairable].T)
    n_units = int(prep.codes.shape[0])
    n_values = int(prep.flat_codes.size)

    def result(
        value: float | None, ci: tuple[float, float] | None = None, n_boot: int = 0
    ) -> AlphaResult:
        return AlphaResult(
            alpha=value,
            ci_low=None if ci is None else ci[0],
            ci_high=None if ci is None else ci[1],
            n_units=n_units,
            n_coders=n_coders,
            n_values=n_values,
            n_bootstrap=n_boot,
        )

    if n_units == 0 or prep.domain.size < 2:
        return result(None)

    fixed_d = None if level == "ordinal" else _unit_disagreement(prep, prep.domain, level)
    point = _weighted_alpha(prep, level, np.ones(n_units), fixed_d)
    if n_bootstrap == 0:
        return result(point)

    rng = np.random.default_rng(seed)
    draws = _bootstrap(prep, level, n_bootstrap, rng, fixed_d)
    if draws.size == 0:
        return result(point)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return result(point, (float(low), float(high)), int(draws.size))


def _as_matrix(matrix: npt.ArrayLike) -> FloatArray:
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D coders × units matrix, got shape {data.shape}")
    if np.isinf(data).any():
        # inf would be taken as a real value and poison every distance.
        raise ValueError("matrix contains infinite values; use np.nan for missing scores")
    return data


def _prepare(units: FloatArray) -> _Pairable:
    """Index the values of pairable units (``units`` is units × coders) by the value domain."""
    present = ~np.isnan(units)
    # Only pairable values: values seen only in unpairable units have n_v = 0 in the package's
    # coincidence matrix and change nothing, so they are left out of the domain.
    domain = np.unique(units[present])
    codes = np.full(units.shape, -1, dtype=np.intp)
    codes[present] = np.searchsorted(domain, units[present])
    flat_units, _ = np.nonzero(present)
    size = domain.size
    return _Pairable(
        codes=codes,
        domain=domain,
        n_u=present.sum(axis=1).astype(np.float64),
        lo=np.where(present, codes, size).min(axis=1, initial=size),
        hi=codes.max(axis=1, initial=-1),
        flat_codes=codes[present],
        flat_units=flat_units.astype(np.intp),
    )


def _delta(x: FloatArray, y: FloatArray, level: Level) -> FloatArray:
    """Elementwise distance; ordinal distances are interval distances of midranks."""
    if level == "nominal":
        return np.asarray(x != y, dtype=np.float64)
    if level == "ratio":
        total = x + y
        # Same convention as the ``krippendorff`` package: distance 0 where c + k = 0.
        quotient = np.divide(x - y, total, out=np.zeros(np.broadcast(x, y).shape), where=total != 0)
        return np.asarray(quotient**2, dtype=np.float64)
    return np.asarray((x - y) ** 2, dtype=np.float64)


def _unit_disagreement(prep: _Pairable, scale: FloatArray, level: Level) -> FloatArray:
    """Each unit's contribution to sum(o_ck · delta_ck): ordered coder pairs over n_u - 1.

    ``scale`` maps codes to the values the distance is taken on (the domain, or midranks).
    """
    codes = prep.codes
    present = codes >= 0
    x = scale[np.where(present, codes, 0)]
    total = np.zeros(codes.shape[0])
    # A loop over coders with the other coders vectorised: M - 1 steps of U × (M - i) arrays,
    # no U × M × M temporary.
    for i in range(codes.shape[1] - 1):
        both = present[:, i : i + 1] & present[:, i + 1 :]
        d = _delta(x[:, i : i + 1], x[:, i + 1 :], level)
        total += np.where(both, d, 0.0).sum(axis=1)
    return 2.0 * total / (prep.n_u - 1.0)


def _midranks(n_v: FloatArray) -> FloatArray:
    # Krippendorff's ordinal delta (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 equals (m_k - m_c)^2
    # with m_c = N_c - n_c / 2 (N_c cumulative): an interval distance on midranks.
    return np.asarray(np.cumsum(n_v, axis=-1) - n_v / 2.0, dtype=np.float64)


def _expected_pairs(n_v: FloatArray, domain: FloatArray, level: Level) -> float:
    """sum_{c,k} n_c n_k delta_ck, in O(V) except for ratio (O(V²), in row blocks)."""
    n = float(n_v.sum())
    if level == "nominal":
        return n * n - float((n_v**2).sum())
    if level in ("interval", "ordinal"):
        x = _midranks(n_v) if level == "ordinal" else domain
        # sum n_c n_k (x_c - x_k)^2 = 2 n sum n_c (x_c - mean)^2; centring keeps it accurate.
        mean = float(n_v @ x) / n
        return 2.0 * n * float(n_v @ (x - mean) ** 2)
    total = 0.0
    step = max(1, _CHUNK_ELEMENTS // domain.size)
    for start in range(0, domain.size, step):
        block = _delta(domain[start : start + step, None], domain[None, :], "ratio")
        total += float(n_v[start : start + step] @ block @ n_v)
    return total


def _weighted_alpha(
    prep: _Pairable, level: Level, w: FloatArray, fixed_d: FloatArray | None
) -> float | None:
    """Alpha with unit u counted w[u] times (w = 1: the point estimate)."""
    drawn = w > 0
    if not prep.hi[drawn].max() > prep.lo[drawn].min():
        return None
    n_v: FloatArray = np.bincount(
        prep.flat_codes, weights=w[prep.flat_units], minlength=prep.domain.size
    ).astype(np.float64)
    # Ordinal: the distances depend on the (re)sampled value totals, so recompute them.
    d = _unit_disagreement(prep, _midranks(n_v), "interval") if fixed_d is None else fixed_d
    observed = float(w @ d)
    expected = _expected_pairs(n_v, prep.domain, level)
    return 1.0 - (float(n_v.sum()) - 1.0) * observed / expected


@dataclass(frozen=True, kw_only=True)
class _Types:
    """Pairable units grouped by the multiset of values they hold.

    Units of one type contribute identically to every term of alpha, so a resample is fully
    described by its type counts, and alpha follows from the totals ``counts @ features``.
    """

    level: Level
    size: int  # V
    inverse: IntArray  # (U,) type of each unit
    mult: IntArray  # (T,) units per type
    lo: IntArray  # (T,) smallest code in the type
    hi: IntArray  # (T,) largest code in the type
    # (T, K): n_u; D_u (fixed distances) or counts and coincidences (ordinal); what D_e needs;
    # last, 1 where the unit's values vary (a resample holding one is surely defined).
    features: FloatArray
    # (V, V) distances for nominal and ratio; interval uses moments, and ordinal distances
    # depend on each resample's value totals.
    delta: FloatArray | None


def _few_types(n_types: int, n_units: int) -> bool:
    # Multinomial draws cost B × T binomials, index draws B × U integers (each cheaper).
    return n_types * 4 <= n_units


def _n_features(level: Level, size: int) -> int:
    if level == "interval":
        return 5
    if level == "ordinal":
        return 2 + size + size * size
    return 3 + size


def _group_types(
    prep: _Pairable, level: Level, fixed_d: FloatArray | None, max_elements: int
) -> _Types | None:
    """Group ``prep``'s units into types; None if the features would exceed ``max_elements``.

    With few types the bootstrap needs T feature rows, with many it needs one per unit.
    """
    n_coders = prep.codes.shape[1]
    size = prep.domain.size
    ordered = np.sort(np.where(prep.codes >= 0, prep.codes, size), axis=1)
    if n_coders * math.log2(size + 1) < 62:
        # One int64 key per unit: np.unique on a vector is much faster than on rows.
        key = ordered @ ((size + 1) ** np.arange(n_coders, dtype=np.int64))
        _, first, inverse, mult = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True
        )
    else:
        _, first, inverse, mult = np.unique(
            ordered, axis=0, return_index=True, return_inverse=True, return_counts=True
        )
    n_rows = first.size if _few_types(first.size, prep.codes.shape[0]) else prep.codes.shape[0]
    if n_rows * _n_features(level, size) > max_elements:
        return None
    lo, hi = prep.lo[first], prep.hi[first]
    return _Types(
        level=level,
        size=size,
        inverse=inverse.ravel(),
        mult=mult,
        lo=lo,
        hi=hi,
        features=_type_features(prep, level, ordered[first], fixed_d, first, hi > lo),
        delta=_delta(prep.domain[:, None], prep.domain[None, :], level)
        if level in ("nominal", "ratio")
        else None,
    )


def _type_features(
    prep: _Pairable,
    level: Level,
    type_codes: IntArray,
    fixed_d: FloatArray | None,
    first: IntArray,
    varied: npt.NDArray[np.bool_],
) -> FloatArray:
    """Feature rows of each type, from one member unit (``first``) and its sorted codes."""
    size = prep.domain.size
    n_types = type_codes.shape[0]
    present = type_codes < size
    n_t = present.sum(axis=1).astype(np.float64)
    if level == "interval":
        assert fixed_d is not None
        # Centred on the pairable mean, 2 (n S2 - S1^2) suffers no cancellation.
        centred = prep.domain - prep.domain[prep.flat_codes].mean()
        x = np.where(present, centred[np.where(present, type_codes, 0)], 0.0)
        return np.column_stack(
            [n_t, fixed_d[first], x.sum(axis=1), (x**2).sum(axis=1), varied]
        ).astype(np.float64)

    rows = np.repeat(np.arange(n_types), type_codes.shape[1])
    flat = type_codes.ravel()
    kept = flat < size
    counts = np.bincount(rows[kept] * size + flat[kept], minlength=n_types * size)
    counts_f = counts.reshape(n_types, size).astype(np.float64)
    if level == "ordinal":
        # Per-type coincidences o_ck = (n_c n_k - [c = k] n_c) / (n_u - 1).
        o = counts_f[:, :, None] * counts_f[:, None, :]
        o[:, np.arange(size), np.arange(size)] -= counts_f
        o /= (n_t - 1.0)[:, None, None]
        columns = [n_t[:, None], counts_f, o.reshape(n_types, size * size), varied[:, None]]
        return np.concatenate(columns, axis=1, dtype=np.float64)
    assert fixed_d is not None
    return np.column_stack([n_t, fixed_d[first], counts_f, varied]).astype(np.float64)


def _alphas_from_totals(
    types: _Types, totals: FloatArray, defined: npt.NDArray[np.bool_]
) -> FloatArray:
    """Alpha for each row of feature totals (b × K); nan where not ``defined``."""
    size = types.size
    t = totals[defined]
    n = t[:, 0]
    if types.level == "interval":
        observed = t[:, 1]
        expected = 2.0 * (n * t[:, 3] - t[:, 2] ** 2)
    elif types.level == "ordinal":
        n_v = t[:, 1 : 1 + size]
        ranks = _midranks(n_v)
        delta = (ranks[:, :, None] - ranks[:, None, :]) ** 2
        coincidences = t[:, 1 + size : 1 + size + size * size].reshape(-1, size, size)
        observed = (coincidences * delta).sum(axis=(1, 2))
        expected = np.einsum("bc,bck,bk->b", n_v, delta, n_v)
    else:
        assert types.delta is not None
        n_v = t[:, 2 : 2 + size]
        observed = t[:, 1]
        expected = np.einsum("bc,ck,bk->b", n_v, types.delta, n_v)
    out = np.full(totals.shape[0], np.nan)
    out[defined] = 1.0 - (n - 1.0) * observed / expected
    return out


def _bootstrap(
    prep: _Pairable,
    level: Level,
    n_bootstrap: int,
    rng: np.random.Generator,
    fixed_d: FloatArray | None,
) -> FloatArray:
    """Alphas of the resamples whose alpha is defined."""
    n_units = prep.codes.shape[0]
    types = _group_types(prep, level, fixed_d, _MAX_FEATURE_ELEMENTS)
    if types is None:
        # Large value domains: per-type V or V² columns would cost more than they save.
        return _bootstrap_reweighted(prep, level, n_bootstrap, rng, fixed_d)

    n_types = types.mult.size
    n_features = types.features.shape[1]
    draws = np.empty(n_bootstrap)
    if _few_types(n_types, n_units):
        # Few types: one multinomial draw per resample gives its type counts directly, with
        # the same distribution as drawing U units (B × T binomials instead of B × U indices).
        chunk = max(1, _CHUNK_ELEMENTS // max(n_types, n_features))
        p = types.mult / n_units
        for start in range(0, n_bootstrap, chunk):
            counts = rng.multinomial(n_units, p, size=min(chunk, n_bootstrap - start))
            totals = counts.astype(np.float64) @ types.features
            defined = totals[:, -1] > 0
            for i in np.flatnonzero(~defined):
                # No unit with varied values: defined iff the constant units differ.
                drawn = counts[i] > 0
                defined[i] = types.hi[drawn].max() > types.lo[drawn].min()
            draws[start : start + counts.shape[0]] = _alphas_from_totals(types, totals, defined)
    else:
        # Many types (few ties): draw unit indices; a per-resample bincount stays in cache.
        features = types.features[types.inverse]
        totals = np.empty((n_bootstrap, n_features))
        defined = np.empty(n_bootstrap, dtype=np.bool_)
        index_type = np.int32 if n_units < 2**31 else np.int64
        for row in range(n_bootstrap):
            idx = rng.integers(0, n_units, size=n_units, dtype=index_type)
            totals[row] = np.bincount(idx, minlength=n_units).astype(np.float64) @ features
            defined[row] = totals[row, -1] > 0 or prep.hi[idx].max() > prep.lo[idx].min()
        draws = _alphas_from_totals(types, totals, defined)
    return draws[~np.isnan(draws)]


def _bootstrap_reweighted(
    prep: _Pairable,
    level: Level,
    n_bootstrap: int,
    rng: np.random.Generator,
    fixed_d: FloatArray | None,
) -> FloatArray:
    # Fallback for large value domains: O(U·M) per resample (O(U·M²) at the ordinal level).
    n_units = prep.codes.shape[0]
    out: list[float] = []
    for _ in range(n_bootstrap):
        w = np.bincount(rng.integers(0, n_units, size=n_units), minlength=n_units)
        value = _weighted_alpha(prep, level, w.astype(np.float64), fixed_d)
        if value is not None:
            out.append(value)
    return np.asarray(out, dtype=np.float64)


def cohen_kappa(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    weights: Literal["none", "linear", "quadratic"] = "none",
) -> float | None:
    """Cohen's kappa of two coders' paired values (``nan`` in either drops the pair).

    Categories are the sorted union of the values in the kept pairs; linear and quadratic
    weights are on the distance between category indices (as in scikit-learn), not values.
    None when undefined: no kept pair, or a single category.
    """
    if weights not in ("none", "linear", "quadratic"):
        raise ValueError(f"unknown weights: {weights!r}")
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"a and b differ in length: {x.size} vs {y.size}")
    if np.isinf(x).any() or np.isinf(y).any():
        raise ValueError("values contain infinity; use nan for missing")
    kept = ~(np.isnan(x) | np.isnan(y))
    x, y = x[kept], y[kept]
    n = x.size
    if n == 0:
        return None
    categories, inverse = np.unique(np.concatenate([x, y]), return_inverse=True)
    k = categories.size
    if k < 2:
        return None
    observed = np.bincount(inverse[:n] * k + inverse[n:], minlength=k * k).reshape(k, k) / n
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    index = np.arange(k)
    distance = np.abs(index[:, None] - index[None, :]).astype(np.float64)
    if weights == "none":
        w = (distance > 0).astype(np.float64)
    elif weights == "linear":
        w = distance
    else:
        w = distance**2
    expected_disagreement = float((w * expected).sum())
    if expected_disagreement == 0.0:
        return None
    return 1.0 - float((w * observed).sum()) / expected_disagreement


def fleiss_kappa(matrix: npt.ArrayLike) -> float | None:
    """Fleiss' kappa of a coders × units matrix of category codes (``nan`` = missing).

    Fleiss' formula assumes the same number of ratings per unit, and generalisations to varying
    numbers are not standard, so only units that every coder rated are used (coders without any
    value are ignored first, so one absent coder does not discard every unit). None when
    undefined: fewer than two coders, no complete unit, or a single category.
    """
    data = _as_matrix(matrix)
    rated = ~np.isnan(data)
    data = data[rated.any(axis=1)]
    n_raters = data.shape[0]
    if n_raters < 2:
        return None
    units = data[:, ~np.isnan(data).any(axis=0)]
    n_units = units.shape[1]
    if n_units == 0:
        return None
    categories, inverse = np.unique(units.T.ravel(), return_inverse=True)
    k = categories.size
    if k < 2:
        return None
    unit_of = np.repeat(np.arange(n_units), n_raters)
    counts = np.bincount(unit_of * k + inverse.ravel(), minlength=n_units * k).reshape(n_units, k)
    counts_f = counts.astype(np.float64)
    p_j = counts_f.sum(axis=0) / (n_units * n_raters)
    p_i = ((counts_f**2).sum(axis=1) - n_raters) / (n_raters * (n_raters - 1))
    p_bar = float(p_i.mean())
    p_e = float((p_j**2).sum())
    return (p_bar - p_e) / (1.0 - p_e)


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two paired score lists, ties allowed; None when undefined.

    ``(C - D) / sqrt((n0 - n1)(n0 - n2))``: C and D count the concordant and discordant pairs,
    n0 - n1 the pairs untied in x and n0 - n2 those untied in y, so a pair tied in both lists
    is in neither. Undefined (None) with fewer than two items or when either list is constant
    (a zero denominator); tied scores are never broken, which would invent agreement. Values
    are compared, not subtracted, so infinite scores still order correctly. Raises ValueError
    when the lists differ in length. O(n²), for the handful of items compared at a time here.
    """
    if len(x) != len(y):
        raise ValueError(f"length mismatch: {len(x)} != {len(y)}")
    if len(x) < 2:
        return None
    xs = np.asarray(x)
    ys = np.asarray(y)
    i, j = np.triu_indices(xs.size, k=1)
    sx = (xs[i] > xs[j]).astype(np.int64) - (xs[i] < xs[j])
    sy = (ys[i] > ys[j]).astype(np.int64) - (ys[i] < ys[j])
    untied_x = int(np.count_nonzero(sx))
    untied_y = int(np.count_nonzero(sy))
    if untied_x == 0 or untied_y == 0:
        return None
    return int((sx * sy).sum()) / math.sqrt(untied_x * untied_y)


def kendall_tau_b_within_groups(
    a: Mapping[tuple[G, I], float], b: Mapping[tuple[G, I], float]
) -> tuple[float | None, int]:
    """Mean Kendall tau-b between two coders within groups, and the number of groups used.

    Keys are (group, item), e.g. (prompt, small model): within each group tau-b
    (``kendall_tau_b``) compares the two coders' orderings of the items both scored (``nan`` =
    not scored). Groups where tau-b is undefined (fewer than two items, or either coder
    constant) are skipped; the mean is None when no group is left. O(k²) per group of k items,
    which is meant to be small.
    """
    by_group: dict[G, tuple[list[float], list[float]]] = {}
    for key, value_a in a.items():
        value_b = b.get(key)
        if value_b is None or math.isnan(value_a) or math.isnan(value_b):
            continue
        xs, ys = by_group.setdefault(key[0], ([], []))
        xs.append(float(value_a))
        ys.append(float(value_b))
    taus = [tau for xs, ys in by_group.values() if (tau := kendall_tau_b(xs, ys)) is not None]
    return (statistics.fmean(taus) if taus else None), len(taus)
