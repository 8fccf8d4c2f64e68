"""Reliability statistics against published values, reference implementations and hand examples.

Published values: Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C
(4 observers × 12 units); the Cohen's kappa grant-proposal example (Wikipedia "Cohen's kappa");
Fleiss (1971)'s 10 subjects × 14 raters example (Wikipedia "Fleiss' kappa", kappa = 0.210);
the Kendall tau-b example with ties of scipy's ``kendalltau`` reference documentation.
Every one is re-derived below exactly (a fraction; -sqrt(2)/3 for tau-b), so a match is not a
rounding accident.
Reference implementations: the ``krippendorff`` package, scikit-learn, scipy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from fractions import Fraction

import krippendorff
import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import cohen_kappa_score

from harmeval_metrics import reliability
from harmeval_metrics.reliability import (
    LEVELS,
    AlphaResult,
    Level,
    alpha,
    cohen_kappa,
    fleiss_kappa,
    kendall_tau_b,
    kendall_tau_b_within_groups,
)
from tests.published_examples import FOUR_OBSERVERS

nan = math.nan


def _delta_fraction(level: Level, c: Fraction, k: Fraction, n_v: dict[Fraction, int]) -> Fraction:
    if level == "nominal":
        return Fraction(int(c != k))
    if level == "interval":
        return (c - k) ** 2
    if level == "ratio":
        return ((c - k) / (c + k)) ** 2
    low, high = min(c, k), max(c, k)
    between = sum(n for g, n in n_v.items() if low <= g <= high)
    return (between - Fraction(n_v[c] + n_v[k], 2)) ** 2


def _alpha_by_hand(matrix: list[list[float]], level: Level) -> Fraction:
    """The paper's recipe, literally and exactly: coincidences, then 1 - (n-1) Σoδ / Σ n n δ."""
    units = [[Fraction(v) for v in col if not math.isnan(v)] for col in zip(*matrix, strict=True)]
    units = [u for u in units if len(u) >= 2]
    o: dict[tuple[Fraction, Fraction], Fraction] = {}
    for values in units:
        for i, j in itertools.permutations(range(len(values)), 2):
            key = (values[i], values[j])
            o[key] = o.get(key, Fraction(0)) + Fraction(1, len(values) - 1)
    n_v: dict[Fraction, int] = {}
    for values in units:
        for v in values:
            n_v[v] = n_v.get(v, 0) + 1
    n = sum(n_v.values())
    observed = sum((w * _delta_fraction(level, c, k, n_v) for (c, k), w in o.items()), Fraction(0))
    expected = sum(
        (n_v[c] * n_v[k] * _delta_fraction(level, c, k, n_v) for c in n_v for k in n_v),
        Fraction(0),
    )
    return 1 - (n - 1) * observed / expected


# --- Krippendorff's alpha: published values -------------------------------------------------


@pytest.mark.parametrize(
    ("level", "published", "exact"),
    [
        ("nominal", 0.743, Fraction(113, 152)),
        ("ordinal", 0.815, Fraction(108577, 133160)),
        ("interval", 0.849, Fraction(951, 1120)),
    ],
)
def test_krippendorff_2011_published_values(
    level: Level, published: float, exact: Fraction
) -> None:
    # The exact fractions are hand derivations of the coincidence formula; the literal Fraction
    # recipe reproducing them is what lets it vouch for the ratio value below.
    assert _alpha_by_hand(FOUR_OBSERVERS.tolist(), level) == exact
    result = alpha(FOUR_OBSERVERS, level)
    assert result.alpha is not None
    assert round(result.alpha, 3) == published
    assert result.alpha == pytest.approx(float(exact), abs=1e-12)
    assert (result.n_units, result.n_coders, result.n_values) == (11, 4, 40)
    assert (result.ci_low, result.ci_high, result.n_bootstrap) == (None, None, 0)


def test_krippendorff_2011_ratio_level() -> None:
    # The paper gives no ratio value; the krippendorff package documents 0.797 for this data.
    exact = _alpha_by_hand(FOUR_OBSERVERS.tolist(), "ratio")
    package = krippendorff.alpha(FOUR_OBSERVERS, level_of_measurement="ratio")
    result = alpha(FOUR_OBSERVERS, "ratio")
    assert result.alpha is not None
    assert round(result.alpha, 3) == 0.797
    assert result.alpha == pytest.approx(float(exact), abs=1e-12)
    assert result.alpha == pytest.approx(package, abs=1e-12)


# --- Krippendorff's alpha: against the krippendorff package --------------------------------


def _random_matrix(rng: np.random.Generator, kind: str) -> np.ndarray:
    coders = int(rng.integers(2, 8))
    units = int(rng.integers(1, 150))
    if kind == "codes":
        data = rng.integers(0, int(rng.integers(2, 7)), size=(coders, units)).astype(float)
    elif kind == "sparse_codes":
        data = rng.choice([0.0, 1.5, 2.0, 7.0, 10.0], size=(coders, units))
    else:
        # Positive (for ratio) and rounded, so there are ties but also many distinct values.
        data = np.round(rng.gamma(2.0, 2.0, size=(coders, units)), 1) + 0.1
    data[rng.random(data.shape) < rng.uniform(0.0, 0.6)] = nan
    return data


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", ["codes", "sparse_codes", "continuous"])
def test_alpha_matches_krippendorff_package_on_random_data(level: Level, kind: str) -> None:
    rng = np.random.default_rng([LEVELS.index(level), len(kind)])
    compared = 0
    for _ in range(25):
        data = _random_matrix(rng, kind)
        ours = alpha(data, level).alpha
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                theirs = float(krippendorff.alpha(data, level_of_measurement=level))
        except ValueError:
            theirs = nan  # the package raises where no unit is pairable
        if math.isnan(theirs):
            assert ours is None
            continue
        assert ours is not None
        assert ours == pytest.approx(theirs, abs=1e-9)
        compared += 1
    assert compared >= 15


def test_alpha_matches_package_at_scale_with_missing_values() -> None:
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, size=5000)
    data = np.clip(truth + rng.integers(-1, 2, size=(6, 5000)), 0, 3).astype(float)
    data[rng.random(data.shape) < 0.1] = nan
    for level in LEVELS:
        ours = alpha(data, level).alpha
        assert ours is not None
        assert ours == pytest.approx(krippendorff.alpha(data, level_of_measurement=level), abs=1e-9)


# --- Krippendorff's alpha: undefined cases and bad input -----------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_is_none_when_undefined(level: Level) -> None:
    no_pairs = alpha(np.array([[1.0, nan], [nan, 2.0]]), level, n_bootstrap=10)
    assert no_pairs == AlphaResult(
        alpha=None, ci_low=None, ci_high=None, n_units=0, n_coders=2, n_values=0, n_bootstrap=0
    )
    constant = alpha(np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]), level, n_bootstrap=10)
    assert constant == AlphaResult(
        alpha=None, ci_low=None, ci_high=None, n_units=3, n_coders=2, n_values=6, n_bootstrap=0
    )
    # The 2 sits in a unit only one coder scored: pairable values are all 1, so D_e = 0.
    only_unpairable = alpha(np.array([[1.0, 1.0, nan], [1.0, 1.0, 2.0]]), level)
    assert only_unpairable.alpha is None
    assert alpha(np.empty((2, 0)), level).alpha is None
    assert alpha(np.empty((0, 3)), level) == AlphaResult(
        alpha=None, ci_low=None, ci_high=None, n_units=0, n_coders=0, n_values=0, n_bootstrap=0
    )


def test_alpha_counts_coders_units_and_values() -> None:
    data = np.array([[1.0, 2.0, nan, 3.0], [1.0, nan, nan, 3.0], [nan, 2.0, 5.0, nan]])
    result = alpha(data, "interval")
    # Unit 3 has one value: not pairable, but its coder still counts as a coder.
    assert (result.n_units, result.n_coders, result.n_values) == (3, 3, 6)
    assert result.alpha == 1.0


def test_alpha_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="level"):
        alpha(FOUR_OBSERVERS, "binary")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        alpha(np.array([1.0, 2.0]), "nominal")
    with pytest.raises(ValueError, match="infinite"):
        alpha(np.array([[1.0, math.inf], [1.0, 2.0]]), "interval")
    with pytest.raises(ValueError, match="n_bootstrap"):
        alpha(FOUR_OBSERVERS, "nominal", n_bootstrap=-1)
    with pytest.raises(ValueError, match="confidence"):
        alpha(FOUR_OBSERVERS, "nominal", n_bootstrap=10, confidence=1.0)


# --- Krippendorff's alpha: bootstrap -------------------------------------------------------


def _noisy_codes(seed: int, n_units: int, n_coders: int = 4) -> np.ndarray:
    """Coders who mostly agree on a 0..4 scale, with 10% missing."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, size=n_units)
    noise = rng.choice([-1, 0, 0, 0, 1], size=(n_coders, n_units))
    data = np.clip(truth + noise, 0, 4).astype(float)
    data[rng.random(data.shape) < 0.1] = nan
    return np.asarray(data, dtype=np.float64)


@pytest.mark.parametrize("level", LEVELS)
def test_bootstrap_ci_contains_estimate_and_narrows_with_more_units(level: Level) -> None:
    small = alpha(_noisy_codes(1, 100), level, n_bootstrap=500, seed=3)
    large = alpha(_noisy_codes(1, 5000), level, n_bootstrap=500, seed=3)
    for result in (small, large):
        assert result.alpha is not None
        assert result.ci_low is not None and result.ci_high is not None
        assert result.ci_low < result.alpha < result.ci_high
        assert result.n_bootstrap == 500
    assert small.ci_low is not None and small.ci_high is not None
    assert large.ci_low is not None and large.ci_high is not None
    # Width shrinks like 1 / sqrt(U): 50 times the units, about a seventh of the width.
    assert (large.ci_high - large.ci_low) < 0.3 * (small.ci_high - small.ci_low)


def test_bootstrap_is_deterministic_with_a_seed() -> None:
    data = _noisy_codes(2, 300)
    first = alpha(data, "ordinal", n_bootstrap=200, seed=11)
    assert alpha(data, "ordinal", n_bootstrap=200, seed=11) == first
    other = alpha(data, "ordinal", n_bootstrap=200, seed=12)
    assert other.alpha == first.alpha
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_bootstrap_confidence_sets_the_percentiles() -> None:
    data = _noisy_codes(4, 300)
    wide = alpha(data, "interval", n_bootstrap=400, confidence=0.99, seed=1)
    narrow = alpha(data, "interval", n_bootstrap=400, confidence=0.5, seed=1)
    assert wide.ci_low is not None and wide.ci_high is not None
    assert narrow.ci_low is not None and narrow.ci_high is not None
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


def test_bootstrap_skips_undefined_resamples() -> None:
    # Two units agree on 0, one on 1: a resample without the 1-unit (or with only it) holds
    # one value, so its alpha is undefined; that happens with probability 8/27 + 1/27 = 1/3.
    data = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    result = alpha(data, "nominal", n_bootstrap=3000, seed=5)
    assert result.alpha == 1.0
    assert (result.ci_low, result.ci_high) == (1.0, 1.0)
    assert 1800 < result.n_bootstrap < 2200


def test_bootstrap_with_one_unit_repeats_the_estimate() -> None:
    result = alpha(np.array([[0.0], [1.0], [1.0]]), "interval", n_bootstrap=20)
    assert result.alpha is not None
    assert result.ci_low == pytest.approx(result.alpha)
    assert result.ci_high == pytest.approx(result.alpha)


def _prepared(data: np.ndarray) -> reliability._Pairable:
    present = ~np.isnan(data)
    return reliability._prepare(data[:, present.sum(axis=0) >= 2].T)


@pytest.mark.parametrize("level", LEVELS)
def test_grouped_bootstrap_totals_equal_reweighted_alpha(level: Level) -> None:
    # White-box: the bootstrap's two evaluations of alpha (per-type feature totals, and direct
    # re-weighting of units) must be the same function of the resample, to rounding.
    rng = np.random.default_rng(9)
    prep = _prepared(_noisy_codes(6, 400, n_coders=5))
    fixed_d = (
        None if level == "ordinal" else reliability._unit_disagreement(prep, prep.domain, level)
    )
    types = reliability._group_types(prep, level, fixed_d, 1 << 30)
    assert types is not None
    counts = rng.multinomial(400, types.mult / types.mult.sum(), size=20)
    counts[0] = types.mult  # the full sample: the point estimate
    totals = counts.astype(float) @ types.features
    grouped = reliability._alphas_from_totals(types, totals, np.ones(20, dtype=bool))
    # A type count spread evenly over the type's units gives the same alpha.
    for row, value in zip(counts, grouped, strict=True):
        weights = (row / types.mult)[types.inverse]
        direct = reliability._weighted_alpha(prep, level, weights, fixed_d)
        assert direct is not None
        assert value == pytest.approx(direct, abs=1e-12)
    assert grouped[0] == pytest.approx(alpha(_noisy_codes(6, 400, n_coders=5), level).alpha)


def _ci(result: AlphaResult) -> tuple[float, float]:
    assert result.ci_low is not None and result.ci_high is not None
    return result.ci_low, result.ci_high


@pytest.mark.parametrize("level", LEVELS)
def test_bootstrap_strategies_agree(level: Level, monkeypatch: pytest.MonkeyPatch) -> None:
    # Multinomial draws over types, index draws over units, and the per-resample fallback are
    # different random streams for the same resampling distribution: their CIs must agree to
    # within Monte Carlo error.
    data = _noisy_codes(8, 400)
    multinomial = _ci(alpha(data, level, n_bootstrap=2000, seed=1))
    width = multinomial[1] - multinomial[0]
    patches: list[Callable[[], None]] = [
        lambda: monkeypatch.setattr(reliability, "_few_types", lambda t, u: False),
        lambda: monkeypatch.setattr(reliability, "_MAX_FEATURE_ELEMENTS", 0),
    ]
    for patch in patches:
        patch()
        other = _ci(alpha(data, level, n_bootstrap=2000, seed=2))
        assert other[0] == pytest.approx(multinomial[0], abs=0.15 * width)
        assert other[1] == pytest.approx(multinomial[1], abs=0.15 * width)


def test_bootstrap_of_continuous_scores_uses_unit_draws() -> None:
    # Nearly every unit is its own type: interval draws unit indices, and ordinal (V ~ 900, so
    # V² features per type) falls back to re-weighting units per resample.
    rng = np.random.default_rng(10)
    truth = rng.random(300)
    data = truth + rng.normal(0.0, 0.1, size=(3, 300))
    levels: tuple[Level, ...] = ("interval", "ordinal")
    for level in levels:
        result = alpha(data, level, n_bootstrap=200)
        low, high = _ci(result)
        assert result.alpha is not None
        assert low < result.alpha < high


# --- Cohen's kappa -------------------------------------------------------------------------


def test_cohen_kappa_grant_proposal_example() -> None:
    # 50 proposals, readers A and B: yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    # p_o = 35/50 = 0.7; A says yes 25/50, B 30/50: p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5;
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    a = [1.0] * 20 + [1.0] * 5 + [0.0] * 10 + [0.0] * 15
    b = [1.0] * 20 + [0.0] * 5 + [1.0] * 10 + [0.0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)


@pytest.mark.parametrize(
    ("weights", "exact"),
    [
        # Pairs (0,0) (1,2) (2,2) (2,1); both margins (1/4, 1/4, 1/2).
        # none: 1 - (2/4) / (1 - 3/8) = 1/5
        ("none", Fraction(1, 5)),
        # linear: observed 2/4; expected sum |i-j| p_i q_j = 7/8; 1 - (1/2) / (7/8) = 3/7
        ("linear", Fraction(3, 7)),
        # quadratic: observed 2/4; expected sum (i-j)^2 p_i q_j = 11/8; 1 - 4/11 = 7/11
        ("quadratic", Fraction(7, 11)),
    ],
)
def test_cohen_kappa_hand_example_weights_on_category_index(weights: str, exact: Fraction) -> None:
    # Codes 10, 20, 40: the weights use the category index (0, 1, 2), not the code values.
    a = [10.0, 20.0, 40.0, 40.0]
    b = [10.0, 40.0, 40.0, 20.0]
    value = cohen_kappa(a, b, weights)  # type: ignore[arg-type]
    assert value == pytest.approx(float(exact), abs=1e-12)
    assert value == pytest.approx(
        cohen_kappa_score(a, b, weights=None if weights == "none" else weights)
    )


@pytest.mark.parametrize("weights", ["none", "linear", "quadratic"])
def test_cohen_kappa_matches_sklearn(weights: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(5, 300))
        k = int(rng.integers(2, 6))
        a = rng.integers(0, k, size=n)
        b = np.where(rng.random(n) < 0.6, a, rng.integers(0, k, size=n))
        ours = cohen_kappa(a, b, weights)  # type: ignore[arg-type]
        theirs = cohen_kappa_score(a, b, weights=None if weights == "none" else weights)
        if math.isnan(theirs):
            assert ours is None
        else:
            assert ours == pytest.approx(theirs, abs=1e-12)


def test_cohen_kappa_drops_pairs_with_a_missing_value() -> None:
    a = [1.0, 0.0, nan, 1.0, 0.0, 1.0]
    b = [1.0, 0.0, 1.0, nan, 1.0, 1.0]
    kept_a, kept_b = [1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 1.0]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(kept_a, kept_b))


def test_cohen_kappa_undefined_and_bad_input() -> None:
    assert cohen_kappa([], []) is None
    assert cohen_kappa([nan, 1.0], [1.0, nan]) is None
    assert cohen_kappa([2.0, 2.0], [2.0, 2.0]) is None
    # Two categories but no agreement beyond chance possible: defined, and 0.
    assert cohen_kappa([0.0, 0.0], [1.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match="length"):
        cohen_kappa([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="weights"):
        cohen_kappa([1.0], [1.0], "cubic")  # type: ignore[arg-type]


# --- Fleiss' kappa -------------------------------------------------------------------------

# Fleiss (1971) via Wikipedia: counts of the 14 raters per category (columns) per subject.
FLEISS_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def _fleiss_matrix(rng: np.random.Generator | None = None) -> np.ndarray:
    """Raters × subjects ratings with the published counts; rater order is arbitrary."""
    columns = []
    for counts in FLEISS_COUNTS:
        ratings = np.repeat(np.arange(1.0, 6.0), counts)
        columns.append(rng.permutation(ratings) if rng is not None else ratings)
    return np.array(columns).T


def test_fleiss_kappa_published_example() -> None:
    # By hand: category totals (20, 28, 39, 21, 32) of 140, so P_e = 4170 / 19600; per-subject
    # sum n_ij^2 - 14 is (182, 46, 56, 80, 60, 84, 44, 32, 52, 52) = 688 over 10 * 14 * 13,
    # so P = 688 / 1820; kappa = (P - P_e) / (1 - P_e) = 4211 / 20059 = 0.20993...
    p_bar, p_e = Fraction(688, 1820), Fraction(4170, 19600)
    exact = (p_bar - p_e) / (1 - p_e)
    assert exact == Fraction(4211, 20059)
    value = fleiss_kappa(_fleiss_matrix())
    assert value is not None
    assert round(value, 3) == 0.210
    assert value == pytest.approx(float(exact), abs=1e-12)
    # Fleiss' kappa ignores which rater gave which rating.
    shuffled = fleiss_kappa(_fleiss_matrix(np.random.default_rng(0)))
    assert shuffled == pytest.approx(float(exact), abs=1e-12)


def test_fleiss_kappa_uses_only_complete_units_and_ignores_absent_coders() -> None:
    full = _fleiss_matrix()
    with_gaps = np.concatenate([full, np.array([[1.0, 2.0]] * 13 + [[nan, nan]])], axis=1)
    with_absent_coder = np.vstack([with_gaps, np.full(with_gaps.shape[1], nan)])
    assert fleiss_kappa(with_gaps) == pytest.approx(float(Fraction(4211, 20059)))
    assert fleiss_kappa(with_absent_coder) == pytest.approx(float(Fraction(4211, 20059)))


def test_fleiss_kappa_with_two_raters_is_scotts_pi() -> None:
    # Two raters: Fleiss' kappa reduces to Scott's pi, i.e. nominal alpha without the
    # small-sample (n - 1) / n correction. Pairs (0,0) (1,1) (0,1) (1,1): pooled shares
    # (3/8, 5/8), P_e = 34/64 = 17/32; P = 3/4; pi = (3/4 - 17/32) / (15/32) = 7/15.
    value = fleiss_kappa(np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]]))
    assert value == pytest.approx(7 / 15, abs=1e-12)


def test_fleiss_kappa_undefined() -> None:
    assert fleiss_kappa(np.array([[1.0, 2.0]])) is None
    assert fleiss_kappa(np.array([[1.0, nan], [nan, 2.0]])) is None
    assert fleiss_kappa(np.array([[3.0, 3.0], [3.0, 3.0]])) is None
    assert fleiss_kappa(np.empty((3, 0))) is None


# --- Kendall's tau-b within groups ---------------------------------------------------------


def test_tau_b_hand_examples() -> None:
    a = {
        # (1,2,3) vs (1,3,2): concordant, concordant, discordant -> (2 - 1) / 3.
        ("p1", "m1"): 1.0,
        ("p1", "m2"): 2.0,
        ("p1", "m3"): 3.0,
        # x ties one pair: n0 = 3, n1 = 1, n2 = 0, C = 2, D = 0 -> 2 / sqrt(2 * 3).
        ("p2", "m1"): 1.0,
        ("p2", "m2"): 1.0,
        ("p2", "m3"): 2.0,
    }
    b = {
        ("p1", "m1"): 1.0,
        ("p1", "m2"): 3.0,
        ("p1", "m3"): 2.0,
        ("p2", "m1"): 1.0,
        ("p2", "m2"): 2.0,
        ("p2", "m3"): 3.0,
    }
    mean, groups = kendall_tau_b_within_groups(a, b)
    assert groups == 2
    assert mean == pytest.approx((1 / 3 + 2 / math.sqrt(6)) / 2, abs=1e-12)
    only_p2 = {k: v for k, v in a.items() if k[0] == "p2"}
    assert kendall_tau_b_within_groups(only_p2, b)[0] == pytest.approx(
        kendalltau([1, 1, 2], [1, 2, 3], variant="b").statistic
    )


def test_tau_b_skips_undefined_groups_and_unshared_items() -> None:
    a = {
        ("p1", "m1"): 0.0,
        ("p1", "m2"): 1.0,
        ("p1", "m3"): 2.0,
        ("p2", "m1"): 1.0,  # b is constant on p2: skipped
        ("p2", "m2"): 2.0,
        ("p3", "m1"): 1.0,  # one shared item: skipped
        ("p3", "m2"): 5.0,
        ("p4", "m1"): nan,  # nan is "not scored"
        ("p4", "m2"): 1.0,
    }
    b = {
        ("p1", "m1"): 2.0,
        ("p1", "m2"): 1.0,
        ("p1", "m3"): 0.0,
        ("p2", "m1"): 3.0,
        ("p2", "m2"): 3.0,
        ("p3", "m1"): 2.0,
        ("p4", "m1"): 1.0,
        ("p4", "m2"): 2.0,
        ("p9", "m1"): 1.0,
    }
    assert kendall_tau_b_within_groups(a, b) == (-1.0, 1)
    assert kendall_tau_b_within_groups({}, b) == (None, 0)


def test_tau_b_matches_scipy_per_group() -> None:
    rng = np.random.default_rng(4)
    a: dict[tuple[int, str], float] = {}
    b: dict[tuple[int, str], float] = {}
    expected = []
    for group in range(30):
        x = rng.integers(0, 4, size=6).astype(float)
        y = np.where(rng.random(6) < 0.5, x, rng.integers(0, 4, size=6)).astype(float)
        for i in range(6):
            a[(group, f"m{i}")] = float(x[i])
            b[(group, f"m{i}")] = float(y[i])
        tau = kendalltau(x, y, variant="b").statistic
        if not math.isnan(tau):
            expected.append(tau)
    mean, groups = kendall_tau_b_within_groups(a, b)
    assert groups == len(expected)
    assert mean == pytest.approx(float(np.mean(expected)), abs=1e-12)


# --- Kendall's tau-b of two lists (the package's one tau-b) ----------------------------------

# Published reference: the example of scipy.stats.kendalltau's reference documentation,
# x = [12, 2, 1, 12, 2], y = [1, 4, 7, 1, 0], statistic -0.47140452079103173. By hand: of the 10
# pairs 2 are concordant and 6 discordant; x ties 2 pairs (12-12, 2-2), y ties 1 (1-1, also tied
# in x); tau-b = (2 - 6) / sqrt((10 - 2)(10 - 1)) = -4 / sqrt(72) = -sqrt(2) / 3.
TAU_B_EXAMPLE = ([12.0, 2.0, 1.0, 12.0, 2.0], [1.0, 4.0, 7.0, 1.0, 0.0])
TAU_B_EXAMPLE_PUBLISHED = -0.47140452079103173


def test_kendall_tau_b_published_example_with_ties() -> None:
    tau = kendall_tau_b(*TAU_B_EXAMPLE)
    assert tau == pytest.approx(TAU_B_EXAMPLE_PUBLISHED, abs=1e-15)
    assert tau == pytest.approx(-math.sqrt(2) / 3, abs=1e-15)
    # Within groups it is the same statistic, per group.
    x, y = TAU_B_EXAMPLE
    a = {("p", i): v for i, v in enumerate(x)}
    b = {("p", i): v for i, v in enumerate(y)}
    assert kendall_tau_b_within_groups(a, b) == (tau, 1)


def test_kendall_tau_b_with_ties_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 4, size=9).astype(float).tolist()
        y = rng.integers(0, 4, size=9).astype(float).tolist()
        ours = kendall_tau_b(x, y)
        ref = kendalltau(x, y, variant="b").statistic
        if math.isnan(ref):
            assert ours is None
        else:
            assert ours == pytest.approx(ref)


def test_kendall_tau_b_undefined_and_bad_input() -> None:
    assert kendall_tau_b([], []) is None
    assert kendall_tau_b([1.0], [2.0]) is None
    # A constant list: tau-b's denominator is 0; ties are never broken into "agreement".
    assert kendall_tau_b([1.0, 1.0], [1.0, 2.0]) is None
    assert kendall_tau_b([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) is None
    # Values are compared, not subtracted: infinities still order.
    assert kendall_tau_b([-math.inf, 0.0, math.inf], [1.0, 2.0, 3.0]) == 1.0
    with pytest.raises(ValueError, match="length mismatch"):
        kendall_tau_b([1.0], [1.0, 2.0])


def test_rank_stability_uses_the_same_tau_b() -> None:
    from harmeval_metrics import model_comparison

    x, y = TAU_B_EXAMPLE
    scores = {
        "a": {f"m{i}": v for i, v in enumerate(x)},
        "b": {f"m{i}": v for i, v in enumerate(y)},
    }
    assert model_comparison.rank_stability(scores) == [("a", "b", kendall_tau_b(x, y))]


def test_krippendorff_2011_binary_two_observers() -> None:
    from tests.published_examples import BINARY_TWO_OBSERVERS

    result = alpha(BINARY_TWO_OBSERVERS, "nominal")
    assert result.alpha is not None and round(result.alpha, 3) == 0.095
    assert result.alpha == pytest.approx(float(Fraction(2, 21)), abs=1e-12)
    assert (result.n_units, result.n_coders, result.n_values) == (10, 2, 20)
