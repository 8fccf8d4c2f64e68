"""The report's harm rate from the judge alone, people alone and both."""

from __future__ import annotations

import numpy as np
import pytest

from harmeval_metrics.few_labels import active_mean, ppi_plus_mean
from harmeval_metrics.stats.few_label_estimate import ACTIVE, PPI_PLUS, estimate


def sample(n_units: int = 400, n_labelled: int = 60, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n_units) < 0.4).astype(float)
    # A judge that misses a third of the harmful answers: its own rate is biased low.
    yhat = np.where((y == 1) & (rng.random(n_units) < 1 / 3), 0.0, y)
    labelled = np.zeros(n_units, dtype=bool)
    labelled[rng.choice(n_units, n_labelled, replace=False)] = True
    return y, yhat, labelled


def test_uniform_labels_give_ppi_plus_beside_the_judge_and_people_alone() -> None:
    y, yhat, labelled = sample()
    e = estimate("j", "m", yhat, np.where(labelled, y, np.nan), labelled, None, 0.95)
    assert (e.n_units, e.n_human, e.method) == (400, 60, PPI_PLUS)
    assert e.judge_only == pytest.approx(yhat.mean())
    assert e.human_only == pytest.approx(y[labelled].mean())
    ppi = ppi_plus_mean(y[labelled], yhat[labelled], yhat[~labelled])
    assert (e.combined, e.combined_ci_low, e.combined_ci_high) == pytest.approx(
        (ppi.estimate, ppi.ci_low, ppi.ci_high)
    )
    # The judge's labels narrow people's interval, and the labels needed say so.
    assert e.human_ci_low is not None and e.human_ci_high is not None
    assert e.combined_ci_low is not None and e.combined_ci_high is not None
    assert e.combined_ci_high - e.combined_ci_low < e.human_ci_high - e.human_ci_low
    assert e.labels_needed_combined is not None and e.labels_needed_human is not None
    assert e.labels_needed_combined < e.labels_needed_human


def test_drawn_labels_are_weighted_by_their_inclusion_probabilities() -> None:
    y, yhat, _ = sample(seed=1)
    pi = np.where(yhat == 1, 0.05, 0.3)  # the active design's draw: more where unsure
    labelled = np.random.default_rng(2).random(y.size) < pi
    e = estimate("j", "m", yhat, np.where(labelled, y, np.nan), labelled, pi, 0.95)
    assert e.method == ACTIVE
    w = 1 / pi[labelled]
    assert e.human_only == pytest.approx((w * y[labelled]).sum() / w.sum())  # Hájek
    tuned = active_mean(y, yhat, labelled, pi, lam=None, offset=None)
    assert e.combined == pytest.approx(min(max(tuned.estimate, 0.0), 1.0))


def test_with_few_drawn_labels_the_rates_and_intervals_stay_in_0_1() -> None:
    """Three labels drawn with π = 0.075 of 30 units: Σ(y/π)/N would be 1.33 for three
    harmful answers; the weighted mean says 1, and no interval comes out inverted."""
    y = np.ones(30)
    labelled = np.zeros(30, dtype=bool)
    labelled[:3] = True
    pi = np.full(30, 0.075)
    e = estimate("j", "m", np.zeros(30), y, labelled, pi, 0.95)
    assert e.human_only == 1.0
    for low, high in [(e.human_ci_low, e.human_ci_high), (e.combined_ci_low, e.combined_ci_high)]:
        assert low is not None and high is not None and 0.0 <= low <= high <= 1.0


def test_with_fewer_than_two_human_labels_only_the_judge_is_reported() -> None:
    y, yhat, _ = sample()
    labelled = np.zeros(y.size, dtype=bool)
    labelled[0] = True
    e = estimate("j", "m", yhat, y, labelled, None, 0.95)
    assert e.n_human == 1 and e.human_only is None and e.combined is None
    assert e.judge_only == pytest.approx(yhat.mean())


def test_a_perfect_judge_gives_about_the_rate_of_all_units() -> None:
    """The interval is then as narrow as the units themselves allow (the judge labelled all
    400; people's 60 alone give one twice as wide)."""
    y, _, labelled = sample(seed=3)
    e = estimate("j", "m", y.copy(), np.where(labelled, y, np.nan), labelled, None, 0.95)
    assert e.combined == pytest.approx(y.mean(), abs=0.01)
    assert e.combined_ci_high is not None and e.combined_ci_low is not None
    assert e.human_ci_high is not None and e.human_ci_low is not None
    full = 2 * 1.96 * np.sqrt(y.var(ddof=1) / y.size)
    assert e.combined_ci_high - e.combined_ci_low == pytest.approx(full, rel=0.05)
    assert 2 * (e.combined_ci_high - e.combined_ci_low) < e.human_ci_high - e.human_ci_low
