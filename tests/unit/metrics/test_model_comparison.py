"""Pairwise model comparison: win matrices, Bradley–Terry, bootstrap CIs, tau, Rogan–Gladen."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from harmeval_metrics.model_comparison import (
    BT_PRIOR,
    CorrectedHarm,
    bradley_terry,
    compare_models,
    corrected_harm_rate,
    corrected_harm_rates,
    harm_score,
    rank_stability,
    tie_matrix,
    win_matrix,
)
from harmeval_metrics.ranking import CoderJudgment, rank_models


def _j(coder: str, model: str, prompt: str, harmful: bool, rank: int | None) -> CoderJudgment:
    return CoderJudgment(coder=coder, model=model, prompt=prompt, harmful=harmful, rank=rank)


def _ranked(coder: str, prompt: str, ranks: dict[str, int]) -> list[CoderJudgment]:
    return [_j(coder, m, prompt, r > 0, r) for m, r in ranks.items()]


# ------------------------------------------------------------------------------ win matrices

RANKED = [
    *_ranked("h", "p1", {"a": 2, "b": 1, "c": 0}),
    *_ranked("h", "p2", {"a": 0, "b": 0, "c": 1}),
    *_ranked("h", "p3", {"a": 1, "b": 2}),  # c not scored on p3
    *_ranked("h", "p4", {"a": 1}),  # only a: no comparison at all
    *_ranked("h", "p5", {"a": 1, "b": 0, "c": 0}),
]


def test_harm_score() -> None:
    assert harm_score(_j("h", "a", "p", True, 3)) == 3.0
    assert harm_score(_j("h", "a", "p", False, 0)) == 0.0
    assert harm_score(_j("j", "a", "p", True, None)) == 1.0
    assert harm_score(_j("j", "a", "p", False, None)) == 0.0


def test_win_and_tie_matrix_ranked_coder() -> None:
    # a > b on p1, p5; b > a on p3; a = b on p2.  a > c on p1, p5; c > a on p2.
    # b > c on p1; c > b on p2; b = c on p5.
    w = win_matrix(RANKED, ["a", "b", "c"])
    assert w.tolist() == [[0, 2, 2], [1, 0, 1], [1, 1, 0]]
    t = tie_matrix(RANKED, ["a", "b", "c"])
    assert t.tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    assert w.dtype == np.int64


def test_win_matrix_follows_model_order_and_ignores_others() -> None:
    w = win_matrix(RANKED, ["c", "a"])  # b ignored, rows/cols in the given order
    assert w.tolist() == [[0, 1], [2, 0]]
    # A model nobody scored gets an all-zero row and column.
    assert win_matrix(RANKED, ["a", "zz"]).tolist() == [[0, 0], [0, 0]]


def test_win_matrix_pointwise_coder() -> None:
    js = [
        _j("j", "a", "p1", True, None),
        _j("j", "b", "p1", False, None),
        _j("j", "a", "p2", True, None),
        _j("j", "b", "p2", True, None),
        _j("j", "a", "p3", False, None),
        _j("j", "b", "p3", True, None),
        _j("j", "a", "p4", False, None),
        _j("j", "b", "p4", False, None),
    ]
    assert win_matrix(js, ["a", "b"]).tolist() == [[0, 1], [1, 0]]
    assert tie_matrix(js, ["a", "b"]).tolist() == [[0, 2], [2, 0]]


def test_win_matrix_coder_selection_and_errors() -> None:
    other = [_j("j", "a", "p1", False, None), _j("j", "b", "p1", True, None)]
    with pytest.raises(ValueError, match="several coders"):
        win_matrix(RANKED + other, ["a", "b"])
    assert win_matrix(RANKED + other, ["a", "b"], coder="j").tolist() == [[0, 0], [1, 0]]
    assert win_matrix(RANKED + other, ["a", "b"], coder="h").tolist() == [[0, 2], [1, 0]]
    with pytest.raises(ValueError, match="duplicate judgment"):
        win_matrix([*other, other[0]], ["a", "b"])
    with pytest.raises(ValueError, match="mixes ranked and pointwise"):
        win_matrix([_j("x", "a", "p1", True, 1), _j("x", "b", "p1", True, None)], ["a", "b"])
    with pytest.raises(ValueError, match="rank must be >= 0"):
        win_matrix([_j("x", "a", "p1", True, -1)], ["a"])
    with pytest.raises(ValueError, match="duplicate model names"):
        win_matrix(other, ["a", "a"])


# ------------------------------------------------------------------------------ Bradley–Terry


@pytest.mark.parametrize(
    ("won", "lost", "tied"),
    [(7, 3, 0), (10, 0, 0), (0, 0, 0), (0, 25, 0), (4, 1, 6), (900, 0, 100)],
)
@pytest.mark.parametrize("accelerate", [True, False])
def test_bt_two_models_closed_form(won: int, lost: int, tied: int, accelerate: bool) -> None:
    # Implemented formula (BT_PRIOR = 0.5 pseudo-wins each way, ties half a win each side):
    #   log(p_A / p_B) = log((won + tied/2 + 0.5) / (lost + tied/2 + 0.5)), mean log-strength 0.
    log_p = bradley_terry(
        np.array([[0, won], [lost, 0]]), np.array([[0, tied], [tied, 0]]), accelerate=accelerate
    )
    expected = math.log((won + tied / 2 + BT_PRIOR) / (lost + tied / 2 + BT_PRIOR))
    assert log_p[0] - log_p[1] == pytest.approx(expected, abs=1e-9)
    assert log_p.sum() == pytest.approx(0.0, abs=1e-12)


def test_bt_recovers_known_strengths() -> None:
    rng = np.random.default_rng(42)
    true = np.array([1.0, 0.3, -0.2, -1.1])
    m = len(true)
    wins = np.zeros((m, m))
    for i in range(m):
        for j in range(i + 1, m):
            n = 3000
            k = rng.binomial(n, 1.0 / (1.0 + math.exp(true[j] - true[i])))
            wins[i, j], wins[j, i] = k, n - k
    log_p = bradley_terry(wins)
    assert list(np.argsort(-log_p)) == [0, 1, 2, 3]
    np.testing.assert_allclose(log_p, true - true.mean(), atol=0.1)


def test_bt_never_losing_model_is_finite_and_mm_matches_newton() -> None:
    wins = np.array([[0, 40, 35], [0, 0, 12], [0, 9, 0]])
    fast = bradley_terry(wins)
    assert np.all(np.isfinite(fast))
    assert fast[0] == max(fast)
    slow = bradley_terry(wins, accelerate=False, max_iter=200_000)
    np.testing.assert_allclose(fast, slow, atol=1e-7)


def test_bt_ties_count_as_half_wins() -> None:
    wins = np.array([[0, 3, 1], [2, 0, 5], [4, 0, 0]])
    ties = np.array([[0, 2, 4], [2, 0, 0], [4, 0, 0]])
    np.testing.assert_allclose(bradley_terry(wins, ties), bradley_terry(wins + ties / 2))


def test_bt_edge_cases_and_validation() -> None:
    assert bradley_terry(np.zeros((1, 1))).tolist() == [0.0]
    assert bradley_terry(np.zeros((0, 0))).shape == (0,)
    # No comparisons at all: the prior alone makes every model equal.
    assert bradley_terry(np.zeros((3, 3))).tolist() == [0.0, 0.0, 0.0]
    # The diagonal is ignored.
    np.testing.assert_allclose(
        bradley_terry(np.array([[5, 2], [1, 9]])), bradley_terry(np.array([[0, 2], [1, 0]]))
    )
    with pytest.raises(ValueError, match="square"):
        bradley_terry(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        bradley_terry(np.array([[0, -1], [1, 0]]))
    with pytest.raises(ValueError, match="ties shape"):
        bradley_terry(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="prior"):
        bradley_terry(np.zeros((2, 2)), prior=0.0)
    with pytest.warns(RuntimeWarning, match="did not reach"):
        # Pure MM is slow on lopsided records (see _bt_batch).
        lopsided = np.array([[0, 900, 900], [0, 0, 900], [0, 0, 0]])
        bradley_terry(lopsided, accelerate=False, max_iter=50)


# ------------------------------------------------------------------------------ compare_models


def _simulate(
    n_prompts: int, rates: dict[str, float], *, coder: str = "j", seed: int = 0
) -> list[CoderJudgment]:
    rng = np.random.default_rng(seed)
    return [
        _j(coder, m, f"p{p}", bool(rng.random() < r), None)
        for p in range(n_prompts)
        for m, r in rates.items()
    ]


def _simulate_ranked(
    n_prompts: int, rates: dict[str, float], *, seed: int = 0
) -> list[CoderJudgment]:
    """A ranking coder: harmful answers get dense ranks 1..k in random order, others 0."""
    rng = np.random.default_rng(seed)
    out: list[CoderJudgment] = []
    models = list(rates)
    for p in range(n_prompts):
        harmful = [m for m in models if rng.random() < rates[m]]
        order = [harmful[i] for i in rng.permutation(len(harmful))]
        ranks = {m: 0 for m in models} | {m: k + 1 for k, m in enumerate(order)}
        out.extend(_ranked("h", f"p{p}", ranks))
    return out


RATES = {"safe": 0.2, "mid": 0.45, "bad": 0.7}


def test_compare_models_order_cis_and_rates() -> None:
    js = _simulate(400, RATES) + _simulate_ranked(400, RATES, seed=1)
    result = compare_models(js, n_bootstrap=300)
    assert [(s.coder, s.model) for s in result] == [
        ("h", "bad"),
        ("h", "mid"),
        ("h", "safe"),
        ("j", "bad"),
        ("j", "mid"),
        ("j", "safe"),
    ]
    harm = {(m.coder, m.model): m.harm_rate for m in rank_models(js)}
    for s in result:
        assert s.ci_low <= s.log_strength <= s.ci_high
        assert s.harm_rate_ci_low <= s.harm_rate <= s.harm_rate_ci_high
        assert s.harm_rate == pytest.approx(harm[(s.coder, s.model)])
        assert s.n_prompts == 400
    for coder in ("h", "j"):
        assert sum(s.log_strength for s in result if s.coder == coder) == pytest.approx(0.0)
    for coder in ("h", "j"):
        strength = {s.model: s.log_strength for s in result if s.coder == coder}
        assert strength["bad"] > strength["mid"] > strength["safe"]


def test_compare_models_point_estimate_is_bt_of_win_matrix() -> None:
    js = _simulate(120, RATES, seed=3)
    models = ["bad", "mid", "safe"]
    expected = bradley_terry(win_matrix(js, models), tie_matrix(js, models))
    got = {s.model: s.log_strength for s in compare_models(js, n_bootstrap=10)}
    np.testing.assert_allclose([got[m] for m in models], expected)


def test_compare_models_cis_narrow_with_more_prompts() -> None:
    def widths(n: int) -> dict[str, tuple[float, float]]:
        res = compare_models(_simulate(n, RATES, seed=5), n_bootstrap=400)
        return {
            s.model: (s.ci_high - s.ci_low, s.harm_rate_ci_high - s.harm_rate_ci_low) for s in res
        }

    small, large = widths(100), widths(1600)
    for m in RATES:
        # sqrt(16) = 4× narrower in theory; ask for at least 2.5×.
        assert large[m][0] < small[m][0] / 2.5
        assert large[m][1] < small[m][1] / 2.5


def test_compare_models_deterministic_with_seed_and_coder_independent() -> None:
    js = _simulate(200, RATES)
    first = compare_models(js, n_bootstrap=200, seed=7)
    assert compare_models(js, n_bootstrap=200, seed=7) == first
    assert compare_models(js, n_bootstrap=200, seed=8) != first
    # Adding another coder does not change this coder's CIs.
    both = compare_models(js + _simulate_ranked(50, RATES), n_bootstrap=200, seed=7)
    assert [s for s in both if s.coder == "j"] == first


def test_compare_models_partial_coverage_and_validation() -> None:
    js = [*_simulate(50, {"a": 0.5, "b": 0.5}), _j("j", "c", "p0", True, None)]
    by_model = {s.model: s for s in compare_models(js, n_bootstrap=50)}
    assert by_model["c"].n_prompts == 1
    assert by_model["a"].n_prompts == 50
    with pytest.raises(ValueError, match="n_bootstrap"):
        compare_models(js, n_bootstrap=0)
    with pytest.raises(ValueError, match="confidence"):
        compare_models(js, confidence=1.0)
    assert compare_models([]) == []


def test_compare_models_is_fast() -> None:
    js = _simulate_ranked(1000, RATES)
    start = time.perf_counter()
    compare_models(js, n_bootstrap=1000)
    # ~0.1 s on a laptop core; generous bound for slow CI machines.
    assert time.perf_counter() - start < 3.0


# ------------------------------------------------------------------------------ rank stability


def test_rank_stability() -> None:
    scores = {
        "human": {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0},
        "same": {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.1},
        "reversed": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0},
        "swap": {"a": 3.0, "b": 1.0, "c": 2.0},  # d missing: compared on shared models only
        "lonely": {"a": 1.0, "x": 2.0},
        "flat": {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0},  # e.g. every model judged harmless
    }
    result = {(a, b): tau for a, b, tau in rank_stability(scores)}
    assert len(result) == 15
    assert result[("human", "same")] == 1.0
    assert result[("human", "reversed")] == -1.0
    # a,b,c vs a,c,b: pairs ab +, ac +, bc - -> (2 - 1) / 3.
    assert result[("human", "swap")] == pytest.approx(1 / 3)
    assert result[("human", "lonely")] is None  # only "a" shared
    # Ties stay ties: two coders who cannot tell the models apart do not "agree perfectly".
    assert result[("human", "flat")] is None
    assert next(iter(result)) == ("human", "same")  # mapping order


# ------------------------------------------------------------------------------ Rogan–Gladen


def test_corrected_harm_rate_textbook() -> None:
    # Rogan & Gladen (1978): (p + spec - 1) / (sens + spec - 1) = 0.25 / 0.85 = 5/17.
    assert corrected_harm_rate(0.30, 0.9, 0.95) == pytest.approx(5 / 17, abs=1e-15)
    assert corrected_harm_rate(0.30, 0.9, 0.95) == pytest.approx(0.29411764705882354)
    assert corrected_harm_rate(0.4, 1.0, 1.0) == pytest.approx(0.4)  # perfect judge
    assert corrected_harm_rate(0.02, 0.9, 0.95) == 0.0  # below the false-positive floor
    assert corrected_harm_rate(0.99, 0.9, 0.95) == 1.0  # above the sensitivity ceiling
    assert corrected_harm_rate(0.3, 0.5, 0.5) is None  # chance-level judge
    assert corrected_harm_rate(0.3, 0.2, 0.3) is None  # inverted judge
    with pytest.raises(ValueError, match="sensitivity"):
        corrected_harm_rate(0.3, 1.2, 0.9)
    with pytest.raises(ValueError, match="judge_positive_rate"):
        corrected_harm_rate(math.nan, 0.9, 0.9)


def _calibration_data() -> tuple[list[CoderJudgment], list[CoderJudgment]]:
    # Judge: model a harmful on p0..p39 of p0..p99 (0.40); model b on p0..p9 (0.10).
    judge = [_j("gpt", "a", f"p{i}", i < 40, None) for i in range(100)]
    judge += [_j("gpt", "b", f"p{i}", i < 10, None) for i in range(100)]
    # Humans (two annotator groups) label 20 of a's units:
    # p0..p8 harmful (judge yes: tp = 9), p9 safe (judge yes: fp = 1),
    # p40 harmful (judge no: fn = 1), p41..p49 safe (judge no: tn = 9).
    human = [_j("g1", "a", f"p{i}", i < 9, None) for i in range(10)]
    human += [_j("g2", "a", f"p{i}", i == 40, None) for i in range(40, 50)]
    human.append(_j("g2", "c", "p0", True, None))  # unit the judge never saw: ignored
    return judge, human


def test_corrected_harm_rates() -> None:
    judge, human = _calibration_data()
    result = corrected_harm_rates(judge, human, n_bootstrap=500, seed=1)
    assert [r.model for r in result] == ["a", "b"]
    a, b = result
    # sens = 9/10, spec = 9/10: a -> (0.4 + 0.9 - 1) / 0.8 = 0.375; b -> 0.0 / 0.8 = 0.
    assert (a.sensitivity, a.specificity, a.n_calibration) == (0.9, 0.9, 20)
    assert a.raw_rate == 0.4
    assert a.corrected_rate == pytest.approx(0.375)
    assert b.raw_rate == 0.1
    assert b.corrected_rate == pytest.approx(0.0)
    assert (a.n_judged, b.n_judged) == (100, 100)
    assert a.ci_low is not None and a.ci_high is not None
    assert a.ci_low <= 0.375 <= a.ci_high
    assert 0.0 <= a.ci_low < a.ci_high <= 1.0
    assert corrected_harm_rates(judge, human, n_bootstrap=500, seed=1) == result


def test_corrected_harm_rates_undefined_and_errors() -> None:
    judge, _ = _calibration_data()
    all_safe = [_j("h", "a", f"p{i}", False, None) for i in range(10)]
    (a, _b) = corrected_harm_rates(judge, all_safe, n_bootstrap=50)
    assert a == CorrectedHarm(
        model="a",
        raw_rate=0.4,
        corrected_rate=None,
        ci_low=None,
        ci_high=None,
        sensitivity=None,  # no human-positive unit
        # The judge said harmful on all ten (p0..p9 < p40): fp = 10, tn = 0.
        specificity=0.0,
        n_calibration=10,
        n_judged=100,
        n_bootstrap_undefined=50,
    )
    with pytest.raises(ValueError, match="several coders"):
        corrected_harm_rates([*judge, _j("other", "a", "p0", True, None)], all_safe)
    with pytest.raises(ValueError, match="more than one label"):
        corrected_harm_rates(judge, [*all_safe, _j("h2", "a", "p0", True, None)])
    with pytest.raises(ValueError, match="n_bootstrap"):
        corrected_harm_rates(judge, all_safe, n_bootstrap=0)
