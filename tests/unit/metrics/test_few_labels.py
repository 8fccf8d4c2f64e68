"""Few-label estimates (harmeval_metrics.few_labels) against ``ppi_py`` and published properties.

Reference implementation: ``ppi_py`` (ppi-python, the PPI authors' package). Its conventions,
matched explicitly below: intervals at ``alpha`` (default 0.1, i.e. 90%); standard deviations
with ddof=0 (``np.std``); PPI++'s λ̂ = Cov(Y, Ŷ) with ddof=0 over Var(Ŷ, all n + N) with ddof=1
(``np.cov``), i.e. our λ̂ (ddof=1 for both) times (n − 1)/n; sample sizes rounded (ours round
up). Published properties: PPI removes a judge's constant offset exactly (Angelopoulos et al.
2023: the rectifier is the judge's measured bias); PPI++ with λ = 0 is the classical estimate
(Angelopoulos, Duchi, Zrnic 2023); active inference is unbiased under any π > 0 and gives
nominal coverage with non-uniform π (Zrnic & Candès 2024, their experiments).
"""

from __future__ import annotations

import math

import numpy as np
import ppi_py
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harmeval_metrics.few_labels import (
    PilotMoments,
    active_mean,
    active_mean_batch,
    assisted_confidence_sequence,
    best_mix,
    bounded_confidence_sequence,
    confidence_sequence,
    draw_labels,
    human_mean,
    human_mean_batch,
    judge_uncertainty,
    labels_needed_active,
    labels_needed_human,
    labels_needed_ppi,
    panel_disagreement,
    pilot_moments,
    ppi_lambda,
    ppi_mean,
    ppi_mean_batch,
    ppi_plus_mean,
    sampling_probabilities,
    z_value,
)


def _judged(seed: int, n: int, big_n: int, *, binary: bool) -> tuple[np.ndarray, ...]:
    """Human labels Y for n items, a judge that agrees with them ~75% of the time (or a noisy
    score), and N judged-only items."""
    rng = np.random.default_rng(seed)
    if binary:
        y = (rng.random(n) < 0.55).astype(float)
        yhat = np.where(rng.random(n) < 0.75, y, 1.0 - y)
        yhat_u = (rng.random(big_n) < 0.5).astype(float)
    else:
        y = rng.normal(0.4, 1.0, n)
        yhat = 0.7 * y + rng.normal(0.2, 0.6, n)
        yhat_u = 0.7 * rng.normal(0.4, 1.0, big_n) + rng.normal(0.2, 0.6, big_n)
    return y, yhat, yhat_u


CASES = [(0, 50, 400, True), (1, 120, 2000, True), (2, 30, 90, False), (3, 400, 5000, False)]


# --- against ppi_py ------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "n", "big_n", "binary"), CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_human_mean_is_ppi_py_classical_interval(seed, n, big_n, binary, confidence) -> None:
    y, _, _ = _judged(seed, n, big_n, binary=binary)
    ours = human_mean(y, confidence=confidence, ddof=0)
    low, high = ppi_py.classical_mean_ci(y, alpha=1.0 - confidence)
    assert ours.estimate == pytest.approx(y.mean(), abs=1e-15)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert ours.lam == 0.0 and ours.n_judged == 0 and ours.n_labelled == n


@pytest.mark.parametrize(("seed", "n", "big_n", "binary"), CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_ppi_is_ppi_py_with_lambda_one(seed, n, big_n, binary, confidence) -> None:
    y, yhat, yhat_u = _judged(seed, n, big_n, binary=binary)
    ours = ppi_mean(y, yhat, yhat_u, confidence=confidence, ddof=0)
    point = ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=1)
    low, high = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=1.0 - confidence, lam=1)
    assert ours.estimate == pytest.approx(float(np.squeeze(point)), abs=1e-12)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((float(low[0]), float(high[0])), abs=1e-12)
    # The textbook formula of the brief, written out.
    assert ours.estimate == pytest.approx(yhat_u.mean() - (yhat - y).mean(), abs=1e-12)
    se = math.sqrt(yhat_u.var() / big_n + (yhat - y).var() / n)
    assert ours.std_error == pytest.approx(se, rel=1e-12)


@pytest.mark.parametrize(("seed", "n", "big_n", "binary"), CASES)
def test_ppi_plus_plus_is_ppi_py_with_its_lambda_convention(seed, n, big_n, binary) -> None:
    y, yhat, yhat_u = _judged(seed, n, big_n, binary=binary)
    lam = ppi_lambda(y, yhat, yhat_u)  # ddof=1 throughout
    # By hand: Cov(Y, Ŷ) / ((1 + n/N) Var(Ŷ over all n + N)).
    by_hand = np.cov(y, yhat)[0, 1] / ((1 + n / big_n) * np.var(np.r_[yhat, yhat_u], ddof=1))
    assert lam == pytest.approx(by_hand, rel=1e-12)
    assert 0.0 < lam < 1.0  # not clipped, so the conventions are all that differ
    theirs_lam = lam * (n - 1) / n
    point = ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u)
    low, high = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=0.1)
    ours = ppi_mean(y, yhat, yhat_u, lam=theirs_lam, confidence=0.9, ddof=0)
    assert ours.estimate == pytest.approx(float(np.squeeze(point)), abs=1e-12)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((float(low[0]), float(high[0])), abs=1e-12)
    tuned = ppi_plus_mean(y, yhat, yhat_u)
    assert tuned.lam == lam


def test_ppi_plus_plus_lambda_is_clipped_like_ppi_py() -> None:
    rng = np.random.default_rng(7)
    y = rng.random(60)
    against = 1.0 - y  # a judge that gets it backwards: λ̂ < 0 before clipping
    yhat_u = rng.random(300)
    assert ppi_lambda(y, against, yhat_u) == 0.0
    ours = ppi_plus_mean(y, against, yhat_u, confidence=0.9, ddof=0)
    low, high = ppi_py.ppi_mean_ci(y, against, yhat_u, alpha=0.1)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((float(low[0]), float(high[0])), abs=1e-12)
    # λ = 0: the humans' own interval.
    assert ours.estimate == pytest.approx(y.mean(), abs=1e-15)


@pytest.mark.parametrize(("half_width", "pool"), [(0.05, 1000), (0.03, 5000), (0.04, 2000)])
def test_labels_needed_ppi_plus_plus_is_ppi_py_power(half_width, pool) -> None:
    """ppi_py's cheapest (n, N) with n + N <= pool reaching the classical estimate's precision
    with n0 = z²Var(Y)/w² labels, predictions nearly free: our n, up to its rounding."""
    moments = PilotMoments(var_y=0.24, var_yhat=0.2, cov=0.09)
    n0 = z_value(0.95) ** 2 * moments.var_y / half_width**2
    theirs = ppi_py.ppi_power(
        moments.correlation, cost_X=0, cost_Y=1, cost_Yhat=1e-9, effective_n=n0, n_max=pool
    )
    ours = labels_needed_ppi(moments, half_width, pool=pool)
    assert ours is not None and theirs["N"] == pool - theirs["n"]
    assert abs(ours - theirs["n"]) <= 1
    # Unlimited judged items: n0·(1 − ρ²) (λ* = Cov/Var(Ŷ) lies in [0, 1] here).
    unlimited = labels_needed_ppi(moments, half_width)
    assert unlimited == math.ceil(n0 * (1 - moments.correlation**2))


# --- published properties -----------------------------------------------------------------

labels01 = arrays(np.float64, st.integers(3, 40), elements=st.sampled_from([0.0, 1.0]))
scores = arrays(np.float64, st.integers(3, 40), elements=st.floats(-5, 5, allow_subnormal=False))


@settings(max_examples=60, deadline=None)
@given(y=scores, y_unlabelled=scores, c=st.floats(-3, 3, allow_subnormal=False))
def test_ppi_removes_a_judge_off_by_a_constant(y, y_unlabelled, c) -> None:
    """A judge reporting every item's human label plus c: PPI gives exactly the humans' mean of
    the judged-only items (which no human labelled), and only the judge's spread is left."""
    yhat, yhat_u = y + c, y_unlabelled + c
    ours = ppi_mean(y, yhat, yhat_u)
    assert ours.estimate == pytest.approx(y_unlabelled.mean(), abs=1e-9)
    point = ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=1)
    assert float(np.squeeze(point)) == pytest.approx(y_unlabelled.mean(), abs=1e-9)
    assert ours.std_error == pytest.approx(
        np.std(yhat_u, ddof=1) / math.sqrt(yhat_u.size), abs=1e-9
    )


@settings(max_examples=60, deadline=None)
@given(y=labels01, data=st.data())
def test_ppi_plus_plus_between_humans_and_ppi(y, data) -> None:
    yhat = data.draw(arrays(np.float64, y.size, elements=st.sampled_from([0.0, 1.0])))
    yhat_u = data.draw(labels01)
    lam = ppi_lambda(y, yhat, yhat_u)
    assert 0.0 <= lam <= 1.0
    human, zero = human_mean(y), ppi_mean(y, yhat, yhat_u, lam=0.0)
    assert zero.estimate == pytest.approx(human.estimate, abs=1e-12)
    assert zero.std_error == pytest.approx(human.std_error, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    y=scores,
    data=st.data(),
    lam=st.one_of(st.none(), st.floats(0, 1)),
    offset=st.one_of(st.none(), st.floats(-2, 2)),
)
def test_active_inference_with_everything_labelled_is_the_humans_mean(y, data, lam, offset) -> None:
    yhat = data.draw(arrays(np.float64, y.size, elements=st.floats(-5, 5)))
    est = active_mean(y, yhat, np.ones(y.size, dtype=bool), np.ones(y.size), lam=lam, offset=offset)
    human = human_mean(y)
    assert est.estimate == pytest.approx(human.estimate, abs=1e-9)
    assert est.std_error == pytest.approx(human.std_error, abs=1e-9)


def test_active_inference_is_exactly_unbiased_over_the_draws() -> None:
    """E over ξ of each term is Y_i for any fixed π, λ, offset: enumerate all 2^N draws."""
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    yhat = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    pi = np.array([0.9, 0.2, 0.5, 0.1, 0.7, 0.35])
    draws = ((np.arange(64)[:, None] >> np.arange(6)) & 1).astype(bool)
    prob = np.prod(np.where(draws, pi, 1 - pi), axis=1)
    for lam, offset in [(1.0, 0.0), (0.4, 0.3), (0.0, 0.0)]:
        est = active_mean_batch(y, yhat, draws, pi, lam=lam, offset=offset, ddof=0)
        assert float((prob * est.estimate).sum()) == pytest.approx(y.mean(), abs=1e-12)


def test_active_inference_covers_with_non_uniform_pi() -> None:
    """Zrnic & Candès's setting: a calibrated judge (Y ~ Bernoulli(p), p ~ Beta(0.3, 0.3),
    Ŷ = p), π ∝ min(p, 1 − p)
    mixed with uniform, budget 10% of N. A fresh population per replication, so the truth is
    E[Y] = 0.5 exactly. Their estimator (λ = 1) and the tuned one both cover ~95%, and the
    uncertainty-driven design is narrower than uniform sampling at the same budget."""
    rng = np.random.default_rng(20240601)
    reps, size, budget = 1000, 1500, 150
    p = rng.beta(0.3, 0.3, size=(reps, size))
    y = (rng.random((reps, size)) < p).astype(float)
    widths = {}
    for name, mix in (("active", 0.3), ("uniform", 1.0)):
        pi = np.stack(
            [sampling_probabilities(judge_uncertainty(row), budget, mix=mix) for row in p]
        )
        assert np.allclose(pi.sum(axis=1), budget)
        labelled = rng.random((reps, size)) < pi
        for lam, offset in ((1.0, 0.0), (None, None)):
            est = active_mean_batch(y, p, labelled, pi, lam=lam, offset=offset)
            coverage = float(est.covers(0.5).mean())
            assert 0.93 <= coverage <= 0.97, (name, lam, coverage)
        widths[name] = float(est.half_width.mean())
        assert abs(est.n_labelled.mean() - budget) < 2
    # Design variance (Var(Y) + E[p(1 − p)(1/π − 1)]) / N: 0.0240 vs 0.0271.
    assert widths["active"] < 0.93 * widths["uniform"]


def test_labels_needed_active_reaches_its_half_width_when_simulated() -> None:
    rng = np.random.default_rng(11)
    size = 4000
    p = rng.beta(0.7, 0.7, size)
    y = (rng.random(size) < p).astype(float)
    u = judge_uncertainty(p)
    need = labels_needed_active(u, y, p, np.ones(size), 0.02, mix=0.3)
    assert need is not None and 0 < need < size
    pi = sampling_probabilities(u, need, mix=0.3)
    est = active_mean_batch(y, p, rng.random((400, size)) < pi, pi)
    # The design's variance is for this population, so the simulated half-width matches it.
    assert float(est.half_width.mean()) == pytest.approx(0.02, rel=0.02)
    assert labels_needed_active(u, y, p, np.ones(size), 0.02, mix=1.0) > need


def test_labels_needed_active_uniform_matches_the_closed_form() -> None:
    """Uniform π = b/M, λ = 1, census pilot: M·Var(θ̂) = Var(Y) + mean((Y − Ŷ)²)(M/b − 1)."""
    rng = np.random.default_rng(5)
    size = 1000
    y = (rng.random(size) < 0.6).astype(float)
    yhat = np.where(rng.random(size) < 0.8, y, 1 - y)
    e = float(((y - yhat) ** 2).mean())
    target = size * (0.05 / z_value(0.95)) ** 2
    expected = math.ceil(e * size / (target - y.var() + e))
    got = labels_needed_active(np.zeros(size), y, yhat, np.ones(size), 0.05, mix=1.0)
    assert got == expected
    # A pilot of 300 uniform labels estimates the same thing, roughly.
    pilot = np.full(size, np.nan)
    chosen = rng.choice(size, 300, replace=False)
    pilot[chosen] = y[chosen]
    estimate = labels_needed_active(np.zeros(size), pilot, yhat, np.full(size, 0.3), 0.05, mix=1.0)
    assert estimate is not None and abs(estimate - expected) < 0.25 * expected


def test_labels_needed_human_and_unreachable_targets() -> None:
    # ⌈1.959964² · 0.25 / 0.05²⌉ = ⌈384.15⌉
    assert labels_needed_human(0.25, 0.05) == 385
    assert labels_needed_human(0.25, 0.05, pool=300) is None
    # A useless judge: PPI (λ = 1) pays for its noise and cannot reach it in 500 items; PPI++
    # drops the judge and needs what the humans alone need.
    useless = PilotMoments(var_y=0.25, var_yhat=0.25, cov=0.0)
    assert labels_needed_ppi(useless, 0.05, tuned=False, pool=500) is None
    assert labels_needed_ppi(useless, 0.05, pool=500) == 385
    size = 200
    y = np.r_[np.ones(100), np.zeros(100)]
    assert labels_needed_active(np.ones(size), y, y, np.ones(size), 0.01) is None


# --- sampling design -----------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    u=arrays(np.float64, st.integers(1, 60), elements=st.floats(0, 1, allow_subnormal=False)),
    share=st.floats(0.01, 1.0),
    mix=st.floats(0.01, 1.0),
)
def test_sampling_probabilities_spend_the_budget(u, share, mix) -> None:
    budget = share * u.size
    pi = sampling_probabilities(u, budget, mix=mix)
    assert pi.sum() == pytest.approx(budget, rel=1e-9)
    assert (pi > 0).all() and (pi <= 1).all()
    order = np.argsort(u, kind="stable")
    assert (np.diff(pi[order]) >= -1e-12).all()  # more uncertain, never less likely
    assert np.allclose(sampling_probabilities(u, budget, mix=1.0), budget / u.size)


def test_sampling_probabilities_cap_and_respread() -> None:
    u = np.array([10.0, 1.0, 1.0, 0.5, 0.5])
    # Proportional would give the first item 2 (and 20/9 at budget 4.5): capped at 1, and the
    # rest re-spread so that Σπ is still the budget.
    assert sampling_probabilities(u, 3.0, mix=0.0) == pytest.approx([1, 2 / 3, 2 / 3, 1 / 3, 1 / 3])
    assert sampling_probabilities(u, 4.5, mix=0.0) == pytest.approx([1, 1, 1, 0.75, 0.75])
    assert sampling_probabilities(u, 1.0, mix=0.0) == pytest.approx(
        [10 / 13, 1 / 13, 1 / 13, 0.5 / 13, 0.5 / 13]
    )
    # More budget than the uncertain items can take: the rest goes evenly to the others.
    two = np.array([1.0, 1.0, 0.0, 0.0])
    assert sampling_probabilities(two, 3.0, mix=0.5) == pytest.approx(
        0.5 * np.array([1, 1, 0.5, 0.5]) + 0.5 * 0.75
    )


def test_zero_probability_is_refused() -> None:
    with pytest.raises(ValueError, match="never be labelled"):
        sampling_probabilities(np.array([1.0, 0.0, 0.0]), 0.5, mix=0.0)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        active_mean([1.0, 0.0], [1.0, 1.0], [True, False], [0.5, 0.0])
    with pytest.raises(ValueError, match="budget"):
        sampling_probabilities(np.ones(3), 4.0)


def test_draw_labels_is_poisson_sampling() -> None:
    pi = np.array([0.05, 0.5, 1.0])
    drawn = np.stack([draw_labels(pi, np.random.default_rng(s)) for s in range(4000)])
    assert drawn.mean(axis=0) == pytest.approx(pi, abs=0.02)
    assert drawn[:, 2].all()


def test_uncertainty_scores() -> None:
    assert judge_uncertainty([0.0, 0.2, 0.5, 0.9]) == pytest.approx([0.0, 0.2, 0.5, 0.1])
    votes = np.array([[1, 1, 1], [1, 0, 1], [0, np.nan, 1], [np.nan] * 3, [0, 0, np.nan]])
    assert panel_disagreement(votes) == pytest.approx([0.0, 1 / 3, 0.5, 0.5, 0.0])


def test_best_mix_prefers_uniform_when_uncertainty_says_nothing() -> None:
    rng = np.random.default_rng(3)
    size = 2000
    y = (rng.random(size) < 0.5).astype(float)
    yhat = np.where(rng.random(size) < 0.8, y, 1 - y)
    noise = rng.random(size)  # unrelated to the judge's errors
    assert best_mix(noise, y, yhat, np.ones(size), 200) >= 0.9
    # And picks the uncertainty-driven design when it points at the errors.
    p = rng.beta(0.7, 0.7, size)
    y = (rng.random(size) < p).astype(float)
    assert best_mix(judge_uncertainty(p), y, p, np.ones(size), 200) <= 0.5


# --- batch and checks ----------------------------------------------------------------------


def test_batch_rows_are_single_estimates() -> None:
    rng = np.random.default_rng(9)
    y = (rng.random((5, 40)) < 0.5).astype(float)
    yhat = np.where(rng.random((5, 40)) < 0.7, y, 1 - y)
    yhat_u = (rng.random((5, 300)) < 0.45).astype(float)
    human = human_mean_batch(y)
    batch = ppi_mean_batch(y, yhat, yhat_u, lam=None)
    for i in range(5):
        assert human.estimate[i] == human_mean(y[i]).estimate
        one = ppi_plus_mean(y[i], yhat[i], yhat_u[i])
        assert (batch.estimate[i], batch.std_error[i], batch.lam[i]) == pytest.approx(
            (one.estimate, one.std_error, one.lam), rel=1e-12
        )
    pi = np.linspace(0.1, 1.0, 40)
    labelled = rng.random((5, 40)) < pi
    many = active_mean_batch(np.where(labelled, y, np.nan), yhat, labelled, pi, lam=None)
    for i in range(5):
        one_active = active_mean(
            np.where(labelled[i], y[i], np.nan), yhat[i], labelled[i], pi, lam=None
        )
        assert many.estimate[i] == pytest.approx(one_active.estimate, rel=1e-12)
        assert int(many.n_labelled[i]) == one_active.n_labelled


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        human_mean([1.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="differ in shape"):
        ppi_mean([1.0, 0.0, 1.0], [1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="degrees of freedom"):
        ppi_mean([1.0], [1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="no human label"):
        active_mean([np.nan, 0.0], [1.0, 1.0], [True, False], [0.5, 0.5])
    with pytest.raises(ValueError, match="boolean"):
        active_mean([1.0, 0.0], [1.0, 1.0], [1, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match="one sample"):
        human_mean(np.ones((2, 3)))
    with pytest.raises(ValueError, match="confidence"):
        human_mean([0.0, 1.0], confidence=1.0)
    assert pilot_moments([0.0, 1.0, 1.0], [0.0, 1.0, 0.0]).cov == pytest.approx(1 / 6)


# --- stopping: a confidence sequence, not a re-computed interval ---------------------------


def test_confidence_sequence_is_time_uniform_where_a_peeked_interval_is_not() -> None:
    """Bernoulli(0.3) labels, 1,000 streams of 2,000: the sequence (tuned for t = 100) leaves
    the truth at some t in [100, 2000] in ~α of the streams; the 95% normal interval
    recomputed after every label does so in about half of them."""
    rng = np.random.default_rng(1)
    x = (rng.random((1000, 2000)) < 0.3).astype(float)
    cs = confidence_sequence(x, confidence=0.95, t_opt=100)
    ever_out = ((cs.ci_low > 0.3) | (cs.ci_high < 0.3))[:, 99:].any(axis=1).mean()
    assert ever_out <= 0.06
    t = np.arange(1, 2001)
    mean = x.cumsum(axis=1) / t
    half = z_value(0.95) * np.sqrt(np.maximum((x**2).cumsum(axis=1) / t - mean**2, 0) / t)
    peeked = ((mean - half > 0.3) | (mean + half < 0.3))[:, 99:].any(axis=1).mean()
    assert peeked > 0.3
    assert cs.estimate[:, -1] == pytest.approx(x.mean(axis=1))


def test_a_bounded_sequence_holds_at_low_rates_where_the_asymptotic_one_collapses() -> None:
    """Harm rates of 0.02 and 0.05 (what safer models have), stopping at the first t >= 30
    whose half-width is <= 0.05, 400 streams each: the empirical-Bernstein sequence misses the
    rate at the stop in <= 5% of the streams; the asymptotic one, whose variance estimate is 0
    after a run of 0s, stops at once and misses far more often."""
    rng = np.random.default_rng(11)
    for rate in (0.02, 0.05):
        x = (rng.random((400, 1500)) < rate).astype(float)
        missed_bounded = missed_asymptotic = 0
        for row in x:
            for cs, counter in (
                (bounded_confidence_sequence(row, half_width=0.05), "bounded"),
                (confidence_sequence(row), "asymptotic"),
            ):
                half = (cs.ci_high - cs.ci_low) / 2
                ok = np.flatnonzero(half[29:] <= 0.05)
                if ok.size == 0:
                    continue
                t = int(ok[0]) + 29
                miss = bool(cs.ci_low[t] > rate or cs.ci_high[t] < rate)
                if counter == "bounded":
                    missed_bounded += miss
                else:
                    missed_asymptotic += miss
        assert missed_bounded / 400 <= 0.05, rate
        assert missed_asymptotic / 400 > 0.15, rate


def test_a_bounded_sequence_is_time_uniform_and_stays_in_its_bounds() -> None:
    rng = np.random.default_rng(12)
    x = (rng.random((500, 800)) < 0.3).astype(float)
    out = 0
    for row in x:
        cs = bounded_confidence_sequence(row, half_width=0.1)
        out += bool(((cs.ci_low > 0.3) | (cs.ci_high < 0.3)).any())
        assert np.all(np.diff(cs.ci_low) >= 0) and np.all(np.diff(cs.ci_high) <= 0)
    assert out / 500 <= 0.05
    # Terms on another range: the same sequence, mapped.
    unit = bounded_confidence_sequence(x[0])
    wide = bounded_confidence_sequence(2 * x[0] - 1, low=-1, high=1)
    np.testing.assert_allclose(wide.ci_low, 2 * unit.ci_low - 1)
    with pytest.raises(ValueError, match="outside"):
        bounded_confidence_sequence([0.5, 1.5])


def test_the_assisted_weight_uses_only_earlier_labels() -> None:
    """Changing label k changes no bound before k: λ_t and every term before t are fixed
    before Y_t is seen (what makes the sequence valid)."""
    rng = np.random.default_rng(13)
    y = (rng.random(300) < 0.4).astype(float)
    yhat = np.where(rng.random(300) < 0.85, y, 1 - y)
    before = assisted_confidence_sequence(y, yhat, 0.4, half_width=0.1)
    for k in (20, 50, 150):
        flipped = y.copy()
        flipped[k] = 1 - flipped[k]
        after = assisted_confidence_sequence(flipped, yhat, 0.4, half_width=0.1)
        np.testing.assert_array_equal(after.ci_low[:k], before.ci_low[:k])
        np.testing.assert_array_equal(after.ci_high[:k], before.ci_high[:k])
        assert not np.array_equal(after.ci_high[k:], before.ci_high[k:])


def test_a_judge_narrows_the_confidence_sequence_and_it_stays_time_uniform() -> None:
    """A population of 5,000 answers (harm rate ~0.3) that a judge labels with 90% accuracy;
    600 of them labelled by people in a uniformly random order, 400 times: the judge-assisted
    sequence (λ from earlier labels only) leaves the population's rate at some t in
    [100, 600] in at most about α of the streams, like people's own, and is narrower."""
    rng = np.random.default_rng(7)
    y_pop = (rng.random(5000) < 0.3).astype(float)
    yhat_pop = np.where(rng.random(5000) < 0.9, y_pop, 1.0 - y_pop)
    theta, judge_mean = y_pop.mean(), yhat_pop.mean()
    out_assisted = out_human = 0
    widths_assisted, widths_human = [], []
    for _ in range(400):
        visit = rng.permutation(5000)[:600]
        y, yhat = y_pop[visit], yhat_pop[visit]
        cs = assisted_confidence_sequence(y, yhat, judge_mean, half_width=0.05)
        alone = bounded_confidence_sequence(y, half_width=0.05)
        out_assisted += bool(((cs.ci_low > theta) | (cs.ci_high < theta))[99:].any())
        out_human += bool(((alone.ci_low > theta) | (alone.ci_high < theta))[99:].any())
        widths_assisted.append(cs.ci_high[299] - cs.ci_low[299])
        widths_human.append(alone.ci_high[299] - alone.ci_low[299])
    assert out_assisted / 400 <= 0.06 and out_human / 400 <= 0.06
    # Var(Y − Ŷ) ≈ 0.1 against Var(Y) ≈ 0.21, on terms of twice the range: 0.83 of the width
    # at 300 labels (each sequence tuned to reach ±0.05 soonest).
    assert np.mean(widths_assisted) < 0.92 * np.mean(widths_human)


def test_an_assisted_sequence_starts_as_people_alone_and_ignores_a_useless_judge() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(600) < 0.4).astype(float)
    alone = bounded_confidence_sequence(y, half_width=0.05)
    # Before the warm-up λ is 0: people's labels, as terms on the assisted range.
    early = assisted_confidence_sequence(y, rng.random(600), 0.5, warmup=600, half_width=0.05)
    same = bounded_confidence_sequence(y, low=-0.5, high=1.5, half_width=0.05)
    np.testing.assert_allclose(early.ci_low, same.ci_low)
    # A judge independent of people gets λ near 0: not much wider than people alone.
    noise = (rng.random(600) < 0.5).astype(float)
    late = assisted_confidence_sequence(y, noise, 0.5, half_width=0.05)
    assert late.ci_high[-1] - late.ci_low[-1] < 1.25 * (alone.ci_high[-1] - alone.ci_low[-1])
    with pytest.raises(ValueError, match="one length"):
        assisted_confidence_sequence(y, y[:10], 0.5)
