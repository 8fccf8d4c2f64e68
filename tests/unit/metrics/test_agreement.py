"""Krippendorff's alpha wrapper and pairwise agreement.

Reference values are the published ones from Krippendorff (2011), "Computing Krippendorff's
Alpha-Reliability" (Annenberg School for Communication, Departmental Papers 43). The exact
fractions next to them were derived by hand from the coincidence-matrix formula
alpha = 1 - (n - 1) * sum(o_ck * d_ck) / sum(n_c * n_k * d_ck) and agree with the paper's
3-decimal figures; asserting both guards against a wrapper that only matches itself.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from harmeval_metrics.agreement import (
    LEVELS,
    PairAgreement,
    krippendorff_alpha,
    pairwise_agreement,
)
from tests.published_examples import FOUR_OBSERVERS

nan = math.nan


# Section A of the paper: binary data, 2 observers, 10 units, no missing data.
# o_00 = 10, o_01 = o_10 = 4, o_11 = 2; n_0 = 14, n_1 = 6; alpha = 1 - 19 * 4 / (14 * 6).
BINARY_TWO_OBSERVERS = np.array(
    [
        [0, 1, 0, 0, 0, 0, 0, 0, 1, 0],
        [1, 1, 1, 0, 0, 1, 0, 0, 0, 0],
    ],
    dtype=float,
)


@pytest.mark.parametrize(
    ("level", "published", "exact"),
    [
        # 1 - 39 * (40 - 32) / (40**2 - (9**2 + 13**2 + 10**2 + 5**2 + 3**2)) = 113/152
        ("nominal", 0.743, Fraction(113, 152)),
        ("ordinal", 0.815, Fraction(108577, 133160)),
        ("interval", 0.849, Fraction(951, 1120)),
    ],
)
def test_krippendorff_2011_four_observers_with_missing_data(
    level: str, published: float, exact: Fraction
) -> None:
    alpha = krippendorff_alpha(FOUR_OBSERVERS, level)  # type: ignore[arg-type]
    assert alpha is not None
    assert round(alpha, 3) == published
    assert alpha == pytest.approx(float(exact), abs=1e-12)


def test_krippendorff_2011_binary_two_observers() -> None:
    alpha = krippendorff_alpha(BINARY_TWO_OBSERVERS, "nominal")
    assert alpha is not None
    assert round(alpha, 3) == 0.095
    assert alpha == pytest.approx(float(Fraction(2, 21)), abs=1e-12)


def test_binary_example_through_pairwise_agreement_with_tuple_units() -> None:
    units = [(f"p{i}", "gemma") for i in range(10)]
    labels = {
        "human": dict(zip(units, BINARY_TWO_OBSERVERS[0].tolist(), strict=True)),
        "judge": dict(zip(units, BINARY_TWO_OBSERVERS[1].tolist(), strict=True)),
    }
    [result] = pairwise_agreement(labels, levels=("nominal",))
    assert result.coder_a == "human"
    assert result.coder_b == "judge"
    assert result.n_units == 10
    assert result.alpha == pytest.approx(2 / 21, abs=1e-12)


def test_alpha_is_none_without_variation() -> None:
    assert krippendorff_alpha(np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]), "nominal") is None


def test_alpha_is_none_when_variation_is_only_in_unpairable_units() -> None:
    # The 2 sits in a unit only one coder scored, so pairable values are all 1: D_e = 0.
    matrix = np.array([[1.0, 1.0, nan], [1.0, 1.0, 2.0]])
    for level in LEVELS:
        assert krippendorff_alpha(matrix, level) is None


def test_alpha_is_none_without_pairable_units() -> None:
    assert krippendorff_alpha(np.array([[1.0, nan], [nan, 2.0]]), "interval") is None
    assert krippendorff_alpha(np.empty((2, 0)), "nominal") is None


def test_alpha_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(BINARY_TWO_OBSERVERS, "ratio")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        krippendorff_alpha(np.array([1.0, 2.0]), "nominal")
    with pytest.raises(ValueError, match="infinite"):
        krippendorff_alpha(np.array([[1.0, math.inf], [1.0, 2.0]]), "interval")


def test_pairwise_orders_pairs_by_name_then_levels() -> None:
    labels = {
        "c": {"u1": 1.0, "u2": 2.0},
        "a": {"u1": 1.0, "u2": 2.0},
        "b": {"u1": 2.0, "u2": 1.0},
    }
    results = pairwise_agreement(labels)
    assert [(r.coder_a, r.coder_b, r.level) for r in results] == [
        (x, y, level) for x, y in [("a", "b"), ("a", "c"), ("b", "c")] for level in LEVELS
    ]
    custom = pairwise_agreement(labels, levels=("interval", "nominal"))
    assert [r.level for r in custom[:2]] == ["interval", "nominal"]


def test_pairwise_counts_only_units_both_scored() -> None:
    labels = {
        "a": {"u1": 0.0, "u2": 1.0, "u3": 1.0, "u4": 0.0, "only_a": 1.0},
        # nan is "not scored", same as a missing key.
        "b": {"u1": 0.0, "u2": 1.0, "u3": 0.0, "u4": nan, "only_b": 0.0},
    }
    [result] = pairwise_agreement(labels, levels=("nominal",))
    assert result.n_units == 3
    # Only u1..u3 are pairable: o_00 = 2, o_11 = 2, o_01 = o_10 = 1; n_0 = n_1 = 3, n = 6.
    # alpha = 1 - 5 * 2 / (3 * 3 * 2) = 4/9. Units scored by one coder must not change it.
    assert result.alpha == pytest.approx(4 / 9, abs=1e-12)
    pairable_only = krippendorff_alpha(np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]]), "nominal")
    assert result.alpha == pytest.approx(pairable_only)


def test_pairwise_identical_coders_agree_perfectly() -> None:
    scores = {("p1", "m1"): 0.0, ("p2", "m1"): 2.0, ("p1", "m2"): 1.0, ("p2", "m2"): 2.0}
    results = pairwise_agreement({"x": scores, "y": dict(scores)})
    assert results == [
        PairAgreement(coder_a="x", coder_b="y", level=level, alpha=1.0, n_units=4)
        for level in LEVELS
    ]


def test_pairwise_constant_values_give_none() -> None:
    labels = {"x": {"u1": 1.0, "u2": 1.0}, "y": {"u1": 1.0, "u2": 1.0}}
    results = pairwise_agreement(labels)
    assert [r.alpha for r in results] == [None, None, None]
    assert all(r.n_units == 2 for r in results)


def test_pairwise_no_overlap_gives_none_and_zero_units() -> None:
    [result] = pairwise_agreement({"x": {"u1": 1.0}, "y": {"u2": 0.0}}, levels=("nominal",))
    assert result.alpha is None
    assert result.n_units == 0


def test_pairwise_needs_two_coders() -> None:
    assert pairwise_agreement({}) == []
    assert pairwise_agreement({"solo": {"u1": 1.0}}) == []
