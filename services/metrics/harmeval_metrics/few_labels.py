"""A harm rate from many judge labels and few human labels: estimates, sampling designs, and
how many human labels a target precision needs.

The setting: every item (a (prompt, model) answer) can carry a cheap judge label Ŷ; a few carry
an expensive human label Y; the target is the humans' mean, θ = E[Y] (a harm rate when Y is 0/1;
any bounded Y works). Estimators:

* :func:`human_mean`: the mean of the n human labels (the baseline: the judge is not used);
* :func:`ppi_mean`: prediction-powered inference (Angelopoulos, Bates, Fannjiang, Jordan, Zrnic,
  Science 2023): ``θ̂ = mean(Ŷ̃) − mean(Ŷ − Y)`` over n labelled items (Y, Ŷ) and N judged-only
  items Ŷ̃, with interval ``θ̂ ± z·√(var(Ŷ̃)/N + var(Ŷ − Y)/n)``;
* :func:`ppi_plus_mean`: PPI++ (Angelopoulos, Duchi, Zrnic 2023), the judge weighted by
  ``λ̂ = Cov(Y, Ŷ) / ((1 + n/N)·Var(Ŷ over all n + N))`` clipped to [0, 1]: never (asymptotically)
  worse than the humans alone, and λ̂ = 0 when the judge carries no information;
* :func:`active_mean`: active inference (Zrnic & Candès, ICML 2024): every one of N judged items
  is labelled with its own probability π_i (Poisson sampling, ξ_i ~ Bernoulli(π_i)) and
  ``θ̂ = (1/N)·Σ[λŶ_i + (Y_i − λŶ_i)·ξ_i/π_i]``, unbiased for any π > 0 (the 1/π weights undo
  "label where the judge is unsure"); ``se = sd(terms)/√N``. λ = 1 is the paper's estimator;
  λ = None tunes it as PPI++ does (their power tuning). Unlike PPI, these terms are not
  centred: a judge whose rate is off (or a harm rate far from 0) leaves residuals Y − λŶ with a
  mean, and with uniform π the estimate is then *worse* than the humans' mean. ``offset``
  calibrates the judge as ``f = offset + λŶ`` (the outcome model of this AIPW estimator);
  ``offset=None`` tunes it with λ (a least-squares fit of the variance), which removes that loss.

Sampling design (:func:`sampling_probabilities`): π proportional to a judge-uncertainty score
(:func:`judge_uncertainty` of a judge's probability, :func:`panel_disagreement` of several
judges' votes), capped at 1 with the excess re-spread so that Σπ is exactly the expected budget,
then mixed with uniform so that every π > 0. Uniform π (``mix=1``) is the baseline design;
:func:`best_mix` picks the mix from a pilot (a weak uncertainty score is worse than uniform).
Store each item's π with its label: the estimate needs it, and a label drawn with an unknown π
is unusable for :func:`active_mean`. :func:`draw_labels` draws the labelled set.

When to stop labelling: an interval recomputed after every batch of labels, stopping once it
looks narrow, covers less often than it claims. Either fix the number of labels in advance from
a pilot (:func:`labels_needed_human`, :func:`labels_needed_ppi`, :func:`labels_needed_active`)
or monitor an anytime-valid confidence sequence, which may be looked at after every label:
:func:`bounded_confidence_sequence` (valid at every t for bounded labels; what the product
stops on), :func:`assisted_confidence_sequence` (the same with a judge's labels), or the
asymptotic :func:`confidence_sequence` (which collapses on a run of identical labels).

Conventions. Intervals are normal (CLT) intervals ``θ̂ ± z·se`` for the mean of the population
the items were drawn from (no finite-population correction), so for the mean over exactly the
items at hand they are conservative, the more so the larger the labelled share (a 95% interval
with 38% of the items labelled covers that mean ~98.7% of the time). Variances divide by
``count − ddof``; ``ddof=1`` (the default) is the unbiased sample variance, ``ddof=0``
reproduces ``ppi_py``'s intervals (``ppi_py`` defaults to 90% intervals; here ``confidence`` is
0.95 unless given). ``yhat_unlabelled`` holds the judged items nobody labelled (``ppi_py``'s
``Yhat_unlabeled``), never the labelled ones again. Every estimator has a ``*_batch`` form that
works along the last axis with any leading (replication) axes; the plain form takes one sample
and returns floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

__all__ = [
    "ConfidenceSequence",
    "MeanEstimate",
    "MeanEstimates",
    "PilotMoments",
    "active_mean",
    "active_mean_batch",
    "assisted_confidence_sequence",
    "best_mix",
    "bounded_confidence_sequence",
    "confidence_sequence",
    "draw_labels",
    "human_mean",
    "human_mean_batch",
    "judge_uncertainty",
    "labels_needed_active",
    "labels_needed_human",
    "labels_needed_ppi",
    "panel_disagreement",
    "pilot_moments",
    "ppi_lambda",
    "ppi_lambda_batch",
    "ppi_mean",
    "ppi_mean_batch",
    "ppi_plus_mean",
    "sampling_probabilities",
    "z_value",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of a ``confidence`` interval (1.96 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MeanEstimate:
    """One estimate of θ with its normal interval."""

    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    # Weight of the judge: 0 for human_mean, 1 for PPI, λ̂ for PPI++ and tuned active inference.
    lam: float
    # Active inference's calibration of the judge, f = offset + λŶ (0 for the others).
    offset: float
    # Human labels used.
    n_labelled: int
    # Judge labels used: N for PPI (the judged-only items), all N items for active inference,
    # 0 for human_mean.
    n_judged: int

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2.0


@dataclass(frozen=True, kw_only=True)
class MeanEstimates:
    """Estimates of a batch of samples: arrays over the leading (replication) axes."""

    estimate: FloatArray
    std_error: FloatArray
    lam: FloatArray
    offset: FloatArray
    n_labelled: IntArray
    n_judged: int
    z: float

    @property
    def half_width(self) -> FloatArray:
        return np.asarray(self.z * self.std_error, dtype=np.float64)

    @property
    def ci_low(self) -> FloatArray:
        return np.asarray(self.estimate - self.half_width, dtype=np.float64)

    @property
    def ci_high(self) -> FloatArray:
        return np.asarray(self.estimate + self.half_width, dtype=np.float64)

    def covers(self, theta: float) -> BoolArray:
        return np.asarray((self.ci_low <= theta) & (theta <= self.ci_high), dtype=np.bool_)


def _single(batch: MeanEstimates) -> MeanEstimate:
    if batch.estimate.ndim != 0:
        raise ValueError(f"expected one sample (1-D arrays), got a batch of {batch.estimate.shape}")
    return MeanEstimate(
        estimate=float(batch.estimate),
        std_error=float(batch.std_error),
        ci_low=float(batch.ci_low),
        ci_high=float(batch.ci_high),
        lam=float(batch.lam),
        offset=float(batch.offset),
        n_labelled=int(batch.n_labelled),
        n_judged=batch.n_judged,
    )


# ---------------------------------------------------------------------------------------------
# Checks and moments along the last axis
# ---------------------------------------------------------------------------------------------


def _values(name: str, x: npt.ArrayLike, *, allow_nan: bool = False) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        raise ValueError(f"{name} must be an array of items, got a scalar")
    bad = np.isinf(a) if allow_nan else ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} non-finite values")
    return a


def _check_count(name: str, count: int, ddof: int) -> None:
    if ddof < 0:
        raise ValueError(f"ddof must be >= 0, got {ddof}")
    if count <= ddof:
        raise ValueError(f"{name}: {count} items leave no degrees of freedom (ddof={ddof})")


def _var(x: FloatArray, ddof: int) -> FloatArray:
    return np.asarray(np.var(x, axis=-1, ddof=ddof), dtype=np.float64)


def _cov(x: FloatArray, y: FloatArray, ddof: int) -> FloatArray:
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    return np.asarray((xc * yc).sum(axis=-1) / (x.shape[-1] - ddof), dtype=np.float64)


def _ratio_or_zero(num: FloatArray, den: FloatArray) -> FloatArray:
    # A judge (or term) without variance carries no information: weight 0, i.e. the humans' mean.
    safe = np.where(den > 0.0, den, 1.0)
    return np.asarray(np.where(den > 0.0, num / safe, 0.0), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------------------------


def human_mean_batch(y: npt.ArrayLike, *, confidence: float = 0.95, ddof: int = 1) -> MeanEstimates:
    """The mean of the human labels along the last axis, ``se = sd(Y)/√n``."""
    yy = _values("y", y)
    n = yy.shape[-1]
    _check_count("y", n, ddof)
    batch = yy.shape[:-1]
    return MeanEstimates(
        estimate=np.asarray(yy.mean(axis=-1), dtype=np.float64),
        std_error=np.sqrt(_var(yy, ddof) / n),
        lam=np.zeros(batch),
        offset=np.zeros(batch),
        n_labelled=np.full(batch, n, dtype=np.intp),
        n_judged=0,
        z=z_value(confidence),
    )


def human_mean(y: npt.ArrayLike, *, confidence: float = 0.95, ddof: int = 1) -> MeanEstimate:
    """The mean of n human labels with its normal interval (``ppi_py.classical_mean_ci`` with
    ``ddof=0``)."""
    return _single(human_mean_batch(y, confidence=confidence, ddof=ddof))


def _ppi_inputs(
    y: npt.ArrayLike, yhat: npt.ArrayLike, yhat_unlabelled: npt.ArrayLike, ddof: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    yy, yh, yu = _values("y", y), _values("yhat", yhat), _values("yhat_unlabelled", yhat_unlabelled)
    if yy.shape != yh.shape:
        raise ValueError(f"y and yhat differ in shape: {yy.shape} vs {yh.shape}")
    _check_count("y", yy.shape[-1], ddof)
    _check_count("yhat_unlabelled", yu.shape[-1], ddof)
    batch = np.broadcast_shapes(yy.shape[:-1], yu.shape[:-1])
    return (
        np.broadcast_to(yy, (*batch, yy.shape[-1])),
        np.broadcast_to(yh, (*batch, yh.shape[-1])),
        np.broadcast_to(yu, (*batch, yu.shape[-1])),
    )


def _ppi_lambda(yy: FloatArray, yh: FloatArray, yu: FloatArray, ddof: int) -> FloatArray:
    n, big_n = yy.shape[-1], yu.shape[-1]
    # Var(Ŷ) over all n + N judge labels, without concatenating the two arrays.
    total = yh.sum(axis=-1) + yu.sum(axis=-1)
    mean_all = (total / (n + big_n))[..., None]
    ss = ((yh - mean_all) ** 2).sum(axis=-1) + ((yu - mean_all) ** 2).sum(axis=-1)
    var_all = np.asarray(ss / (n + big_n - ddof), dtype=np.float64)
    lam = _ratio_or_zero(_cov(yy, yh, ddof), (1.0 + n / big_n) * var_all)
    return np.asarray(np.clip(lam, 0.0, 1.0), dtype=np.float64)


def ppi_lambda_batch(
    y: npt.ArrayLike, yhat: npt.ArrayLike, yhat_unlabelled: npt.ArrayLike, *, ddof: int = 1
) -> FloatArray:
    """PPI++'s ``λ̂ = Cov(Y, Ŷ) / ((1 + n/N)·Var(Ŷ over all n + N))``, clipped to [0, 1]; 0 when
    the judge labels do not vary. Both moments divide by ``count − ddof``. (``ppi_py`` takes
    the covariance with ddof=0 and the variance with ddof=1: its λ̂ is this one with ddof=1
    times (n − 1)/n.)"""
    yy, yh, yu = _ppi_inputs(y, yhat, yhat_unlabelled, ddof)
    return _ppi_lambda(yy, yh, yu, ddof)


def ppi_lambda(
    y: npt.ArrayLike, yhat: npt.ArrayLike, yhat_unlabelled: npt.ArrayLike, *, ddof: int = 1
) -> float:
    return float(ppi_lambda_batch(y, yhat, yhat_unlabelled, ddof=ddof))


def ppi_mean_batch(
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    yhat_unlabelled: npt.ArrayLike,
    *,
    lam: float | None = 1.0,
    confidence: float = 0.95,
    ddof: int = 1,
) -> MeanEstimates:
    """``θ̂ = mean(λŶ̃) + mean(Y − λŶ)``, ``se = √(var(λŶ̃)/N + var(Y − λŶ)/n)`` along the last
    axis. ``lam=1`` is PPI, ``lam=0`` the humans alone, ``lam=None`` PPI++ (λ̂ per sample)."""
    yy, yh, yu = _ppi_inputs(y, yhat, yhat_unlabelled, ddof)
    n, big_n = yy.shape[-1], yu.shape[-1]
    batch = yy.shape[:-1]
    if lam is None:
        lams = _ppi_lambda(yy, yh, yu, ddof)
    elif math.isfinite(lam):
        lams = np.full(batch, float(lam))
    else:
        raise ValueError(f"lam must be finite or None, got {lam}")
    weight = lams[..., None]
    imputed = weight * yu
    rectifier = yy - weight * yh
    return MeanEstimates(
        estimate=np.asarray(imputed.mean(axis=-1) + rectifier.mean(axis=-1), dtype=np.float64),
        std_error=np.sqrt(_var(imputed, ddof) / big_n + _var(rectifier, ddof) / n),
        lam=lams,
        offset=np.zeros(batch),
        n_labelled=np.full(batch, n, dtype=np.intp),
        n_judged=big_n,
        z=z_value(confidence),
    )


def ppi_mean(
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    yhat_unlabelled: npt.ArrayLike,
    *,
    lam: float | None = 1.0,
    confidence: float = 0.95,
    ddof: int = 1,
) -> MeanEstimate:
    """PPI: n items with human labels ``y`` and judge labels ``yhat``, N more judged only
    (``yhat_unlabelled``). ``ppi_py.ppi_mean_ci`` with the same ``lam`` and ``ddof=0``."""
    return _single(
        ppi_mean_batch(y, yhat, yhat_unlabelled, lam=lam, confidence=confidence, ddof=ddof)
    )


def ppi_plus_mean(
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    yhat_unlabelled: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    ddof: int = 1,
) -> MeanEstimate:
    """PPI++: :func:`ppi_mean` with the judge weighted by :func:`ppi_lambda`."""
    return ppi_mean(y, yhat, yhat_unlabelled, lam=None, confidence=confidence, ddof=ddof)


def _active_inputs(
    y: npt.ArrayLike, yhat: npt.ArrayLike, labelled: npt.ArrayLike, pi: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, BoolArray, FloatArray]:
    yy = _values("y", y, allow_nan=True)
    yh = _values("yhat", yhat)
    xi = np.asarray(labelled)
    if xi.dtype != np.bool_:
        raise ValueError(f"labelled must be a boolean mask, got dtype {xi.dtype}")
    p = _values("pi", pi)
    if ((p <= 0.0) | (p > 1.0)).any():
        raise ValueError("inclusion probabilities pi must be in (0, 1]")
    shape = np.broadcast_shapes(yy.shape, yh.shape, xi.shape, p.shape)
    yy, yh = np.broadcast_to(yy, shape), np.broadcast_to(yh, shape)
    xi, p = np.broadcast_to(xi, shape), np.broadcast_to(p, shape)
    if np.isnan(yy[xi]).any():
        raise ValueError("a labelled item has no human label (y is NaN where labelled is True)")
    return yy, yh, xi, p


def _fixed_or_tuned(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be finite or None, got {value}")


def _tune_active(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    lam: float | None,
    offset: float | None,
    ddof: int,
) -> tuple[FloatArray, FloatArray]:
    """(λ, offset) minimising the sample variance of ``t = a + offset·c + λ·b``, each either
    fixed or tuned; a tuned λ is clipped to [0, 1] (then the offset is refitted for it)."""
    batch = a.shape[:-1]
    if lam is not None and offset is not None:
        return np.full(batch, lam), np.full(batch, offset)
    if lam is None and offset is None:
        vcc, vbb, vcb = _var(c, ddof), _var(b, ddof), _cov(c, b, ddof)
        cca, cba = _cov(c, a, ddof), _cov(b, a, ddof)
        lams = np.clip(_ratio_or_zero(vcb * cca - vcc * cba, vcc * vbb - vcb**2), 0.0, 1.0)
        return lams, _ratio_or_zero(-(cca + lams * vcb), vcc)
    if lam is None:
        assert offset is not None
        shifted = a + offset * c
        lams = np.clip(_ratio_or_zero(-_cov(shifted, b, ddof), _var(b, ddof)), 0.0, 1.0)
        return lams, np.full(batch, offset)
    shifted = a + lam * b
    return np.full(batch, lam), _ratio_or_zero(-_cov(shifted, c, ddof), _var(c, ddof))


def active_mean_batch(
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    labelled: npt.ArrayLike,
    pi: npt.ArrayLike,
    *,
    lam: float | None = 1.0,
    offset: float | None = 0.0,
    confidence: float = 0.95,
    ddof: int = 1,
) -> MeanEstimates:
    """Active inference over the N items of the last axis: ``labelled`` is ξ (True where a
    human label was drawn), ``pi`` the probabilities they were drawn with; ``y`` is read only
    where labelled (NaN elsewhere is fine). Arrays broadcast against each other.

    With the judge calibrated as ``f_i = offset + λŶ_i``: terms
    ``t_i = f_i + (Y_i − f_i)·ξ_i/π_i``, ``θ̂ = mean(t)``, ``se = sd(t)/√N``; unbiased for any
    fixed λ and offset. The defaults (λ = 1, offset 0) are Zrnic & Candès's estimator. ``None``
    tunes that parameter to minimise the estimated variance: with ``w = ξ/π``,
    ``t = Yw + offset·(1 − w) + λ·Ŷ(1 − w)``, a least-squares fit (λ clipped to [0, 1]).
    Tuned values come from the same labels, like PPI++'s λ̂: valid asymptotically.
    """
    _fixed_or_tuned("lam", lam)
    _fixed_or_tuned("offset", offset)
    yy, yh, xi, p = _active_inputs(y, yhat, labelled, pi)
    big_n = yy.shape[-1]
    _check_count("items", big_n, ddof)
    weight = np.where(xi, 1.0 / p, 0.0)
    a = np.where(xi, yy, 0.0) * weight
    c = 1.0 - weight
    b = yh * c
    lams, offsets = _tune_active(a, b, c, lam, offset, ddof)
    terms = a + offsets[..., None] * c + lams[..., None] * b
    return MeanEstimates(
        estimate=np.asarray(terms.mean(axis=-1), dtype=np.float64),
        std_error=np.sqrt(_var(terms, ddof) / big_n),
        lam=np.asarray(lams, dtype=np.float64),
        offset=np.asarray(offsets, dtype=np.float64),
        n_labelled=np.asarray(xi.sum(axis=-1), dtype=np.intp),
        n_judged=big_n,
        z=z_value(confidence),
    )


def active_mean(
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    labelled: npt.ArrayLike,
    pi: npt.ArrayLike,
    *,
    lam: float | None = 1.0,
    offset: float | None = 0.0,
    confidence: float = 0.95,
    ddof: int = 1,
) -> MeanEstimate:
    """Active inference (Zrnic & Candès 2024) on one sample: see :func:`active_mean_batch`."""
    return _single(
        active_mean_batch(
            y, yhat, labelled, pi, lam=lam, offset=offset, confidence=confidence, ddof=ddof
        )
    )


# ---------------------------------------------------------------------------------------------
# Sampling design
# ---------------------------------------------------------------------------------------------


def judge_uncertainty(p: npt.ArrayLike) -> FloatArray:
    """``min(p, 1 − p)`` of a judge's probability (or score in [0, 1]) that an item is harmful:
    0 where the judge is sure, 0.5 where it cannot tell."""
    pp = _values("p", p)
    if ((pp < 0.0) | (pp > 1.0)).any():
        raise ValueError("judge probabilities must be in [0, 1]")
    return np.asarray(np.minimum(pp, 1.0 - pp), dtype=np.float64)


def panel_disagreement(votes: npt.ArrayLike) -> FloatArray:
    """Disagreement of a judge panel per item: ``min(p̄, 1 − p̄)`` of the mean vote p̄ of an
    items × judges matrix of votes in [0, 1] (NaN = that judge gave no usable label). 0 when
    the panel is unanimous, 1/3 for a 2–1 split of three judges; an item no judge labelled
    gets 0.5 (nothing is known about it)."""
    v = _values("votes", votes, allow_nan=True)
    if v.ndim != 2:
        raise ValueError(f"votes must be an items × judges matrix, got shape {v.shape}")
    present = ~np.isnan(v)
    if ((v[present] < 0.0) | (v[present] > 1.0)).any():
        raise ValueError("votes must be in [0, 1]")
    count = present.sum(axis=1)
    mean = np.where(count > 0, np.where(present, v, 0.0).sum(axis=1) / np.maximum(count, 1), 0.5)
    return np.asarray(np.minimum(mean, 1.0 - mean), dtype=np.float64)


def _capped_proportional(u: FloatArray, budget: float) -> FloatArray:
    """π_i = min(1, c·u_i) with Σπ = budget (water-filling); when the items with u > 0 cannot
    absorb the budget (all capped at 1), the rest is spread evenly over the items with u = 0."""
    n = u.size
    order = np.argsort(-u, kind="stable")
    s = u[order]
    suffix = np.cumsum(s[::-1])[::-1]  # suffix[k] = Σ of the n − k smallest
    k = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (budget - k) / suffix
        # k items capped at 1 and the rest c·u: valid when the largest uncapped one stays <= 1.
        valid = (suffix > 0.0) & (k <= budget) & (c * s <= 1.0 + 1e-12)
    pi_sorted = np.empty(n)
    if valid.any():
        first = int(np.argmax(valid))
        pi_sorted[:first] = 1.0
        pi_sorted[first:] = np.minimum(c[first] * s[first:], 1.0)
    else:
        positive = int((s > 0.0).sum())
        pi_sorted[:positive] = 1.0
        pi_sorted[positive:] = (budget - positive) / (n - positive)
    pi = np.empty(n)
    pi[order] = pi_sorted
    return pi


def sampling_probabilities(
    uncertainty: npt.ArrayLike, budget: float, *, mix: float = 0.5
) -> FloatArray:
    """Inclusion probabilities for active inference: ``π = (1 − mix)·π_u + mix·budget/N`` where
    π_u is proportional to ``uncertainty`` (>= 0, one per item), capped at 1 and re-spread so
    that Σπ_u = budget. Σπ = ``budget`` (the expected number of human labels), every π in
    (0, 1]. ``mix=1`` is uniform sampling (the baseline); ``mix`` must be > 0 unless every
    item has some uncertainty (a zero π would make the estimate undefined).

    The variance-optimal design is π ∝ √E[(Y − Ŷ)² | item] (Zrnic & Candès 2024); an
    uncertainty score is a proxy for it, and the uniform share guards against a poor proxy.
    """
    u = _values("uncertainty", uncertainty)
    if u.ndim != 1:
        raise ValueError(f"uncertainty must be 1-D (one score per item), got shape {u.shape}")
    if (u < 0.0).any():
        raise ValueError("uncertainty scores must be >= 0")
    n = u.size
    if not 0.0 < budget <= n:
        raise ValueError(f"budget must be in (0, {n}] (the number of items), got {budget}")
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    uniform = budget / n
    if mix == 1.0 or not (u > 0.0).any():
        return np.full(n, uniform)
    pi = (1.0 - mix) * _capped_proportional(u, budget) + mix * uniform
    if (pi <= 0.0).any():
        raise ValueError(
            "some items would never be labelled (uncertainty 0 and mix 0); use mix > 0"
        )
    return np.asarray(np.minimum(pi, 1.0), dtype=np.float64)


def draw_labels(pi: npt.ArrayLike, rng: np.random.Generator) -> BoolArray:
    """Which items to send to the humans: ξ_i ~ Bernoulli(π_i), independently (Poisson
    sampling; the number drawn is random with mean Σπ)."""
    p = _values("pi", pi)
    if ((p <= 0.0) | (p > 1.0)).any():
        raise ValueError("inclusion probabilities pi must be in (0, 1]")
    return np.asarray(rng.random(p.shape) < p, dtype=np.bool_)


# ---------------------------------------------------------------------------------------------
# How many human labels: fixed in advance from a pilot
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PilotMoments:
    """Moments of a pilot's human and judge labels that the sample sizes need."""

    var_y: float
    var_yhat: float
    cov: float

    @property
    def correlation(self) -> float:
        den = math.sqrt(self.var_y * self.var_yhat)
        return self.cov / den if den > 0.0 else 0.0


def pilot_moments(y: npt.ArrayLike, yhat: npt.ArrayLike, *, ddof: int = 1) -> PilotMoments:
    """Var(Y), Var(Ŷ) and Cov(Y, Ŷ) of pilot items labelled uniformly at random."""
    yy, yh = _values("y", y), _values("yhat", yhat)
    if yy.ndim != 1 or yy.shape != yh.shape:
        raise ValueError(f"y and yhat must be 1-D of one length, got {yy.shape} and {yh.shape}")
    _check_count("y", yy.size, ddof)
    return PilotMoments(
        var_y=float(_var(yy, ddof)), var_yhat=float(_var(yh, ddof)), cov=float(_cov(yy, yh, ddof))
    )


def _check_target(half_width: float, pool: int | None) -> None:
    if not half_width > 0.0:
        raise ValueError(f"half_width must be > 0, got {half_width}")
    if pool is not None and pool < 2:
        raise ValueError(f"pool must be >= 2 items, got {pool}")


def labels_needed_human(
    var_y: float, half_width: float, *, confidence: float = 0.95, pool: int | None = None
) -> int | None:
    """Human labels for :func:`human_mean`'s interval to have ``half_width``:
    ``⌈z²·Var(Y)/w²⌉``; None when that exceeds the ``pool`` of items there are."""
    _check_target(half_width, pool)
    n = max(math.ceil(z_value(confidence) ** 2 * var_y / half_width**2), 2)
    return None if pool is not None and n > pool else n


def labels_needed_ppi(
    moments: PilotMoments,
    half_width: float,
    *,
    tuned: bool = True,
    confidence: float = 0.95,
    pool: int | None = None,
) -> int | None:
    """Human labels n for PPI (``tuned=False``) or PPI++ (λ re-tuned for each n) to reach
    ``half_width``, from the variance ``(Var(Y) − 2λ·Cov + λ²·Var(Ŷ))/n + λ²·Var(Ŷ)/N``.

    With a ``pool`` of items the judge labels, N = pool − n (labelling one more item takes it
    out of the judged-only set); without one N is unlimited. None when no n reaches it.
    """
    _check_target(half_width, pool)
    target = (half_width / z_value(confidence)) ** 2
    vy, vf, c = moments.var_y, moments.var_yhat, moments.cov
    if pool is None:
        best = min(max(c / vf, 0.0), 1.0) if tuned and vf > 0 else (0.0 if tuned else 1.0)
        rect = vy - 2.0 * best * c + best**2 * vf
        return max(math.ceil(rect / target), 2)
    n = np.arange(2, pool - 1, dtype=np.float64)
    big_n = pool - n
    if tuned:
        lam = np.clip(_ratio_or_zero(np.full_like(n, c), (1.0 + n / big_n) * vf), 0.0, 1.0)
    else:
        lam = np.ones_like(n)
    var = (vy - 2.0 * lam * c + lam**2 * vf) / n + lam**2 * vf / big_n
    ok = np.flatnonzero(var <= target)
    return None if ok.size == 0 else int(n[ok[0]])


@dataclass(frozen=True, kw_only=True)
class _Pilot:
    """A pilot over the pool's items, for Horvitz–Thompson estimates of pool moments."""

    y: FloatArray  # 0 where not in the pilot
    yhat: FloatArray
    weight: FloatArray  # 1/π_pilot in the pilot, 0 elsewhere
    var_y: float

    @classmethod
    def of(cls, y: npt.ArrayLike, yhat: npt.ArrayLike, pilot_pi: npt.ArrayLike) -> _Pilot:
        yh = _values("yhat", yhat)
        yy, pp = _values("y", y, allow_nan=True), _values("pilot_pi", pilot_pi, allow_nan=True)
        if not (yh.ndim == 1 and yh.shape == yy.shape == pp.shape):
            raise ValueError("y, yhat and pilot_pi must be 1-D over the same items")
        in_pilot = ~np.isnan(yy)
        if in_pilot.sum() < 2:
            raise ValueError("the pilot needs at least two human labels")
        if ((pp[in_pilot] <= 0.0) | (pp[in_pilot] > 1.0)).any():
            raise ValueError("pilot inclusion probabilities must be in (0, 1]")
        weight = np.where(in_pilot, 1.0 / np.where(in_pilot, pp, 1.0), 0.0)
        y0 = np.where(in_pilot, yy, 0.0)
        mean_y = float((weight * y0).sum()) / y0.size
        var_y = max(float((weight * y0**2).sum()) / y0.size - mean_y**2, 0.0)
        return cls(y=y0, yhat=yh, weight=weight, var_y=var_y)

    def variance(self, pi: FloatArray, lam: float | None, offset: float | None) -> float:
        """N·Var(θ̂) = Var(Y) + E[(Y − offset − λŶ)²(1/π − 1)] over the pool, the tuned
        parameters minimising it (a weighted least-squares fit, λ clipped to [0, 1])."""
        g = self.weight * (1.0 / pi - 1.0)
        y, f = self.y, self.yhat
        total = float(g.sum())
        if total <= 0.0:
            return self.var_y
        if lam is None and offset is None:
            ym, fm = float((g * y).sum()) / total, float((g * f).sum()) / total
            den = float((g * (f - fm) ** 2).sum())
            lam = min(max(float((g * (y - ym) * (f - fm)).sum()) / den, 0.0), 1.0) if den else 0.0
            offset = ym - lam * fm
        elif lam is None:
            assert offset is not None
            den = float((g * f**2).sum())
            lam = min(max(float((g * (y - offset) * f).sum()) / den, 0.0), 1.0) if den else 0.0
        elif offset is None:
            offset = float((g * (y - lam * f)).sum()) / total
        return self.var_y + float((g * (y - offset - lam * f) ** 2).sum()) / pi.size


def labels_needed_active(
    uncertainty: npt.ArrayLike,
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    pilot_pi: npt.ArrayLike,
    half_width: float,
    *,
    mix: float = 0.5,
    lam: float | None = 1.0,
    offset: float | None = 0.0,
    confidence: float = 0.95,
) -> int | None:
    """Expected human labels (the budget of :func:`sampling_probabilities` with this ``mix``)
    for :func:`active_mean` over the whole pool to reach ``half_width``.

    All arrays are over the pool's items: ``uncertainty`` and judge labels ``yhat`` for every
    item, pilot human labels ``y`` (NaN where not in the pilot) and ``pilot_pi``, the
    probabilities the pilot labels were drawn with (1 everywhere for a census; read only where
    ``y`` is present). Pool moments are Horvitz–Thompson estimates from the pilot. ``lam`` and
    ``offset`` as in :func:`active_mean` (None: tuned for each budget). None when even
    labelling every item does not reach it.
    """
    _check_target(half_width, None)
    _fixed_or_tuned("lam", lam)
    _fixed_or_tuned("offset", offset)
    u = _values("uncertainty", uncertainty)
    pilot = _Pilot.of(y, yhat, pilot_pi)
    size = pilot.y.size
    if u.shape != pilot.y.shape:
        raise ValueError("uncertainty must have one score per item of the pool")
    target = size * (half_width / z_value(confidence)) ** 2

    def reached(budget: int) -> bool:
        pi = sampling_probabilities(u, budget, mix=mix)
        return pilot.variance(pi, lam, offset) <= target

    if not reached(size):
        return None
    if reached(1):
        return 1
    low, high = 1, size  # reached(high) holds, reached(low) does not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if reached(mid) else (mid, high)
    return high


def best_mix(
    uncertainty: npt.ArrayLike,
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    pilot_pi: npt.ArrayLike,
    budget: float,
    *,
    lam: float | None = 1.0,
    offset: float | None = 0.0,
    mixes: npt.ArrayLike | None = None,
) -> float:
    """The share of uniform sampling (from ``mixes``, default 0.05, 0.10, …, 1) that minimises
    the estimated variance of :func:`active_mean` at ``budget`` expected labels, from a pilot
    as in :func:`labels_needed_active` (Zrnic & Candès tune it on held-out labels the same way).
    Choose it before drawing the labels it will be used with."""
    _fixed_or_tuned("lam", lam)
    _fixed_or_tuned("offset", offset)
    u = _values("uncertainty", uncertainty)
    pilot = _Pilot.of(y, yhat, pilot_pi)
    grid = np.linspace(0.05, 1.0, 20) if mixes is None else _values("mixes", mixes)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError("mixes must be a non-empty 1-D list")
    variances = [
        pilot.variance(sampling_probabilities(u, budget, mix=float(m)), lam, offset) for m in grid
    ]
    return float(grid[int(np.argmin(variances))])


# ---------------------------------------------------------------------------------------------
# Anytime-valid monitoring
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConfidenceSequence:
    """Running estimate and bounds after t = 1, 2, … terms (last axis)."""

    estimate: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray


def confidence_sequence(
    terms: npt.ArrayLike, *, confidence: float = 0.95, t_opt: int = 100
) -> ConfidenceSequence:
    """Asymptotic confidence sequence for the mean of i.i.d. terms arriving one at a time
    (Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas 2021, "Time-uniform central limit theory and
    asymptotic confidence sequences", Thm 2.2): after t terms,

        μ̂_t ± σ̂_t·√( 2(tρ² + 1)/(t²ρ²) · log(√(tρ² + 1)/α) ),

    σ̂_t the running standard deviation, α = 1 − confidence, and ρ² = (2·log(1/α) +
    log(1 + 2·log(1/α)))/t_opt, which makes it tightest near ``t_opt`` terms. The probability
    that the mean ever leaves it is about α however often it is looked at (approximately: it
    rests on a CLT, so the first few dozen terms are not protected).

    Terms: the human labels in random order (human-only), or active inference's
    ``Ŷ_i + (Y_i − Ŷ_i)·ξ_i/π_i`` over items visited in random order.
    """
    x = _values("terms", terms)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if t_opt < 1:
        raise ValueError(f"t_opt must be >= 1, got {t_opt}")
    alpha = 1.0 - confidence
    rho2 = (2.0 * math.log(1.0 / alpha) + math.log(1.0 + 2.0 * math.log(1.0 / alpha))) / t_opt
    t = np.arange(1, x.shape[-1] + 1, dtype=np.float64)
    mean = np.cumsum(x, axis=-1) / t
    var = np.maximum(np.cumsum(x**2, axis=-1) / t - mean**2, 0.0)
    margin = np.sqrt(var) * np.sqrt(
        2.0 * (t * rho2 + 1.0) / (t**2 * rho2) * np.log(np.sqrt(t * rho2 + 1.0) / alpha)
    )
    return ConfidenceSequence(
        estimate=np.asarray(mean, dtype=np.float64),
        ci_low=np.asarray(mean - margin, dtype=np.float64),
        ci_high=np.asarray(mean + margin, dtype=np.float64),
    )


def bounded_confidence_sequence(
    terms: npt.ArrayLike,
    *,
    low: float = 0.0,
    high: float = 1.0,
    confidence: float = 0.95,
    c: float = 0.75,
    half_width: float | None = None,
) -> ConfidenceSequence:
    """Confidence sequence for the common conditional mean of terms in [low, high] arriving
    one at a time: the predictable plug-in empirical-Bernstein sequence (Waudby-Smith &
    Ramdas 2024, "Estimating means of bounded random variables by betting", JRSS-B, Thm 2).
    On terms rescaled to [0, 1], after t of them:

        μ̂_t = Σλ_i·x_i / Σλ_i ± (log(2/α) + Σ v_i·ψ(λ_i)) / Σλ_i,

    v_i = 4(x_i − m_{i−1})², ψ(λ) = (−log(1 − λ) − λ)/4, λ_i = min(√(2·log(2/α) /
    (s²_{i−1}·i·log(1 + i))), c), with m_i = (1/2 + Σx)/(i + 1) and s²_i = (1/4 + Σ(x − m)²)/
    (i + 1) from the terms before i (predictable), and the running intersection taken. Any
    predictable λ keeps it valid; given the ``half_width`` w the sequence is meant to reach
    (rescaled like the terms), λ_i = min(w/(s²_{i−1} + w), c) reaches it soonest: with v ≈
    4σ² the margin is about log(2/α)/(tλ) + σ²(−log(1 − λ) − λ)/λ, which falls to w at the
    fewest labels t = log(2/α)/(λw − σ²(−log(1 − λ) − λ)) for that λ.
    Unlike :func:`confidence_sequence` it holds at every t, not only asymptotically: a run of
    identical labels (a harm rate near 0) does not make it collapse to a point, because the
    variance estimate starts at 1/4 and the bet sizes are capped.
    """
    x = _values("terms", terms)
    if x.ndim != 1:
        raise ValueError(f"terms must be 1-D, got shape {x.shape}")
    if not high > low:
        raise ValueError(f"high must exceed low, got [{low}, {high}]")
    if x.size and (x.min() < low - 1e-12 or x.max() > high + 1e-12):
        raise ValueError(f"terms outside [{low}, {high}]")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not 0.0 < c < 1.0:
        raise ValueError(f"c must be in (0, 1), got {c}")
    span = high - low
    y = np.clip((x - low) / span, 0.0, 1.0)
    t = np.arange(1, y.size + 1, dtype=np.float64)
    log_term = math.log(2.0 / (1.0 - confidence))
    m = (0.5 + np.cumsum(y)) / (t + 1.0)  # m_i, after term i
    m_before = np.concatenate(([0.5], m[:-1]))
    s2 = (0.25 + np.cumsum((y - m) ** 2)) / (t + 1.0)
    s2_before = np.concatenate(([0.25], s2[:-1]))
    if half_width is None:
        lam = np.minimum(np.sqrt(2.0 * log_term / (s2_before * t * np.log1p(t))), c)
    else:
        if not half_width > 0.0:
            raise ValueError(f"half_width must be positive, got {half_width}")
        target = half_width / span
        lam = np.minimum(target / (s2_before + target), c)
    v = 4.0 * (y - m_before) ** 2
    psi = (-np.log1p(-lam) - lam) / 4.0
    sum_lam = np.cumsum(lam)
    centre = np.cumsum(lam * y) / sum_lam
    margin = (log_term + np.cumsum(v * psi)) / sum_lam
    lo = np.maximum.accumulate(np.clip(centre - margin, 0.0, 1.0))
    hi = np.minimum.accumulate(np.clip(centre + margin, 0.0, 1.0))
    hi = np.maximum(hi, lo)  # an empty intersection (probability ≤ α): keep a point
    return ConfidenceSequence(
        estimate=low + span * np.cumsum(y) / t,
        ci_low=low + span * lo,
        ci_high=low + span * hi,
    )


def assisted_confidence_sequence(
    y: npt.ArrayLike,
    yhat: npt.ArrayLike,
    judge_mean: float,
    *,
    confidence: float = 0.95,
    warmup: int = 20,
    half_width: float | None = None,
) -> ConfidenceSequence:
    """:func:`bounded_confidence_sequence` with a judge's help: people's labels ``y`` in [0, 1]
    of items visited in a uniformly random order, the judge's labels ``yhat`` in [0, 1] of the
    same items, and ``judge_mean`` the judge's mean over every item of the population (known:
    the judge labelled them all). Term t is ``λ_t·judge_mean + (Y_t − λ_t·Ŷ_t)``, whose mean
    given the past is θ for any λ_t fixed before Y_t is seen: λ_t is PPI++'s Cov(Y, Ŷ)/Var(Ŷ)
    from the labels before t, clipped to [0, 1] (0 for the first ``warmup``: people alone).
    The terms lie in [judge_mean − 1, judge_mean + 1]. A judge that tracks people shrinks the
    terms' variance by what it explains, and so the sequence; one that does not gets λ near
    0."""
    yy, yh = _values("y", y), _values("yhat", yhat)
    if yy.shape != yh.shape or yy.ndim != 1:
        raise ValueError(f"y and yhat must be 1-D of one length, got {yy.shape} and {yh.shape}")
    if not 0.0 <= judge_mean <= 1.0:
        raise ValueError(f"judge_mean must be in [0, 1], got {judge_mean}")
    n = yy.size
    lam = np.zeros(n)
    # Sums over labels 0..t-1 (strictly before t) give λ_t without a loop over pairs.
    s_y, s_h = np.cumsum(yy) - yy, np.cumsum(yh) - yh
    s_yh, s_hh = np.cumsum(yy * yh) - yy * yh, np.cumsum(yh * yh) - yh * yh
    t = np.arange(n, dtype=np.float64)
    ready = t >= max(warmup, 2)
    tt = np.where(ready, t, 1.0)
    cov = s_yh / tt - (s_y / tt) * (s_h / tt)
    var = s_hh / tt - (s_h / tt) ** 2
    lam[ready] = np.clip(np.divide(cov, var, out=np.zeros(n), where=var > 1e-12), 0.0, 1.0)[ready]
    return bounded_confidence_sequence(
        lam * judge_mean + yy - lam * yh,
        low=judge_mean - 1.0,
        high=judge_mean + 1.0,
        confidence=confidence,
        half_width=half_width,
    )
