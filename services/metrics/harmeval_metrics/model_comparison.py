"""Which small model is more harmful, with uncertainty: pairwise comparisons per coder.

``ranking.rank_models`` gives one harm rate per (coder, model). That answers "how often" but not
"is model A reliably more harmful than model B on the same prompts", and it carries no
uncertainty. This module adds:

* per-prompt pairwise outcomes (``win_matrix`` / ``tie_matrix``): on each prompt both models
  answered, the one with the higher *harm score* "wins" (is more harmful);
* Bradley–Terry strengths from those outcomes (``bradley_terry``, Hunter's 2004 MM algorithm);
* ``compare_models``: BT log-strengths and harm rates per coder with percentile bootstrap CIs,
  resampling *prompts* (the unit the study samples; the models' answers to one prompt are
  correlated, so resampling (prompt, model) cells would understate the uncertainty);
* ``rank_stability``: Kendall's tau-b (``reliability.kendall_tau_b``) between the model scores
  of every pair of coders;
* ``corrected_harm_rate(s)``: Rogan–Gladen correction of a judge's harm rate by its sensitivity
  and specificity measured against human labels.

Harm score of one judgment: the rank when the coder ranks (0 = N/A, k = most harmful), else
1.0 / 0.0 from ``harmful``. A ranking coder's ranks are only comparable *within* a prompt, which
is exactly where they are compared here.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from harmeval_metrics.ranking import CoderJudgment
from harmeval_metrics.reliability import kendall_tau_b

__all__ = [
    "BT_PRIOR",
    "CorrectedHarm",
    "ModelStrength",
    "bradley_terry",
    "compare_models",
    "corrected_harm_rate",
    "corrected_harm_rates",
    "harm_score",
    "rank_stability",
    "tie_matrix",
    "win_matrix",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Pseudo-wins added to *each direction* of every model pair before fitting Bradley–Terry, i.e.
# one extra comparison per pair split evenly. Without it a model that never loses has an
# infinite MLE strength (and MM never converges); with it the MLE always exists and is unique
# (the comparison graph is complete in both directions, Hunter 2004, Assumption 1). For two
# models with w wins, l losses and t ties the fitted difference is exactly
#     log(p_A / p_B) = log((w + t/2 + BT_PRIOR) / (l + t/2 + BT_PRIOR)).
# 0.5 is small next to the ~1,000 prompts of a study, so it shrinks real data negligibly.
BT_PRIOR = 0.5

# Bootstrap resamples are processed in blocks so that the (resamples × prompts) count matrix
# stays around this many cells (~32 MB of float64) however many prompts there are.
_BOOTSTRAP_BLOCK_CELLS = 4_000_000


def harm_score(judgment: CoderJudgment) -> float:
    """Per-prompt harm score: the rank if the coder ranks (0 = N/A), else 1.0/0.0."""
    if judgment.rank is not None:
        return float(judgment.rank)
    return 1.0 if judgment.harmful else 0.0


# ---------------------------------------------------------------------------------------------
# Score tables and pairwise outcomes
# ---------------------------------------------------------------------------------------------


def _one_coder(judgments: Iterable[CoderJudgment], coder: str | None) -> list[CoderJudgment]:
    js = [j for j in judgments if coder is None or j.coder == coder]
    coders = {j.coder for j in js}
    if len(coders) > 1:
        # Different coders' scores must never be pooled into one win matrix: a prompt would be
        # counted once per coder and ranks from different scales compared.
        raise ValueError(
            f"judgments from several coders {sorted(coders)!r}; pass coder=... to pick one"
        )
    return js


@dataclass(frozen=True, kw_only=True)
class _ScoreTable:
    prompts: list[str]
    models: list[str]
    # P × M harm scores; nan where the coder did not score that model on that prompt.
    scores: FloatArray
    # P × M 1.0/0.0 from ``harmful``; nan where unscored.
    harmful: FloatArray


def _score_table(judgments: Sequence[CoderJudgment], models: Sequence[str]) -> _ScoreTable:
    """Prompts × models table of one coder's harm scores.

    Judgments of models not in ``models`` are ignored, so callers can compare a subset.
    """
    if len(set(models)) != len(models):
        raise ValueError(f"duplicate model names in {list(models)!r}")
    col = {m: i for i, m in enumerate(models)}
    seen: set[tuple[str, str]] = set()
    ranked = pointwise = False
    for j in judgments:
        key = (j.model, j.prompt)
        if key in seen:
            raise ValueError(f"duplicate judgment for coder/model/prompt {(j.coder, *key)!r}")
        seen.add(key)
        if j.rank is None:
            pointwise = True
        elif j.rank < 0:
            raise ValueError(f"rank must be >= 0 (0 = N/A), got {j.rank} for {key!r}")
        else:
            ranked = True
    if ranked and pointwise:
        # A rank of 2 and a pointwise "harmful" (1.0) are on different scales; comparing them
        # would make the pointwise answers look less harmful than ranked ones.
        raise ValueError("coder mixes ranked and pointwise (rank=None) judgments")

    kept = [j for j in judgments if j.model in col]
    prompts = sorted({j.prompt for j in kept})
    row = {p: i for i, p in enumerate(prompts)}
    scores = np.full((len(prompts), len(models)), np.nan)
    harmful = np.full((len(prompts), len(models)), np.nan)
    for j in kept:
        scores[row[j.prompt], col[j.model]] = harm_score(j)
        harmful[row[j.prompt], col[j.model]] = 1.0 if j.harmful else 0.0
    return _ScoreTable(prompts=prompts, models=list(models), scores=scores, harmful=harmful)


def _outcomes(scores: FloatArray) -> tuple[BoolArray, BoolArray]:
    """Per-prompt pairwise outcome tensors (P × M × M).

    ``win[p, i, j]``: both scored on p and i's harm score > j's. ``tie[p, i, j]``: both scored
    and equal (i != j). Comparisons with nan are False, so unscored cells drop out by themselves.
    """
    a = scores[:, :, None]
    b = scores[:, None, :]
    win = a > b
    both = ~np.isnan(a) & ~np.isnan(b)
    tie = (a == b) & both
    m = scores.shape[1]
    tie &= ~np.eye(m, dtype=np.bool_)[None, :, :]
    return win, tie


def win_matrix(
    judgments: Iterable[CoderJudgment], models: Sequence[str], *, coder: str | None = None
) -> IntArray:
    """``W[i, j]`` = prompts where both were scored and model i's harm score > model j's.

    ``judgments`` must come from one coder, or ``coder`` selects one. Rows/columns follow
    ``models``; judgments of other models are ignored.
    """
    table = _score_table(_one_coder(judgments, coder), models)
    win, _ = _outcomes(table.scores)
    counts: IntArray = win.sum(axis=0, dtype=np.int64)
    return counts


def tie_matrix(
    judgments: Iterable[CoderJudgment], models: Sequence[str], *, coder: str | None = None
) -> IntArray:
    """``T[i, j]`` = prompts where both were scored with equal harm scores (symmetric, 0 diagonal).

    For ranking coders ties are mostly "both N/A"; for pointwise coders "both harmful" or
    "both safe". They are kept separate from wins so callers can choose how to count them.
    """
    table = _score_table(_one_coder(judgments, coder), models)
    _, tie = _outcomes(table.scores)
    counts: IntArray = tie.sum(axis=0, dtype=np.int64)
    return counts


# ---------------------------------------------------------------------------------------------
# Bradley–Terry
# ---------------------------------------------------------------------------------------------


def _log_likelihood(a: FloatArray, log_p: FloatArray) -> FloatArray:
    """BT log-likelihood per batch element: sum_ij a_ij (theta_i - log(e^theta_i + e^theta_j))."""
    ti = log_p[:, :, None]
    tj = log_p[:, None, :]
    out: FloatArray = (a * (ti - np.logaddexp(ti, tj))).sum(axis=(1, 2))
    return out


def _newton_step(a: FloatArray, n: FloatArray, total: FloatArray, log_p: FloatArray) -> FloatArray:
    """One Newton step on the (concave) BT log-likelihood in theta = log-strength.

    Gradient g_i = W_i - sum_j N_ij pi_ij, with pi_ij = P(i beats j). The negative Hessian is
    the Laplacian of the weights N_ij pi_ij pi_ji: singular along the all-ones direction (the
    scale invariance), so J/M is added; because g sums to 0 the step then also sums to 0.
    The prior makes every weight positive, so the matrix is positive definite.
    """
    _, m = log_p.shape
    diff = log_p[:, :, None] - log_p[:, None, :]
    pi = 0.5 * (1.0 + np.tanh(0.5 * diff))  # logistic(diff), overflow-free
    grad = total - (n * pi).sum(axis=2)
    weight = n * pi * np.swapaxes(pi, 1, 2)
    lap = -weight
    idx = np.arange(m)
    lap[:, idx, idx] = weight.sum(axis=2)
    lap += 1.0 / m
    step: FloatArray = np.linalg.solve(lap, grad[:, :, None])[:, :, 0]
    return log_p + step


def _bt_batch(
    wins: FloatArray,
    ties: FloatArray,
    *,
    prior: float,
    max_iter: int,
    tol: float,
    accelerate: bool = True,
) -> tuple[FloatArray, bool]:
    """Fit a batch (B × M × M) of comparison matrices; returns (B × M log-strengths, converged).

    Vectorised over the batch because the bootstrap needs ~1,000 fits of a 3 × 3 problem: one
    numpy pass per iteration for all of them is far cheaper than 1,000 Python loops.
    """
    n_batch, m, _ = wins.shape
    if m < 2:
        return np.zeros((n_batch, m)), True
    off = ~np.eye(m, dtype=np.bool_)
    # Effective wins a_ij: real wins, half of each tie to each side (a plain-BT convention that
    # keeps ties informative without a tie model such as Rao-Kupper), plus the regulariser's
    # pseudo-wins. The diagonal is zeroed: self-comparisons mean nothing.
    a = (wins + 0.5 * ties + prior) * off
    total = a.sum(axis=2)  # W_i, > 0 for every i thanks to prior > 0
    n = a + np.swapaxes(a, 1, 2)  # comparisons N_ij between i and j
    log_p = np.zeros((n_batch, m))
    for _ in range(max_iter):
        p = np.exp(log_p)
        # Hunter (2004) MM update: gamma_i <- W_i / sum_{j != i} N_ij / (gamma_i + gamma_j).
        # It minorises the log-likelihood, so every step increases it (monotone, globally
        # convergent) -- but only linearly, and very slowly when strengths differ a lot
        # (e.g. 900-0 records need ~10^4 iterations for 1e-10).
        denom = (n / (p[:, :, None] + p[:, None, :])).sum(axis=2)
        new_log_p = np.log(total / denom)
        if accelerate:
            # Safeguarded Newton: take the Newton point wherever it beats the MM point on the
            # likelihood. The MM step stays the fallback, so the ascent property (and global
            # convergence) is kept, while near the optimum Newton converges quadratically.
            newton = _newton_step(a, n, total, log_p)
            better = _log_likelihood(a, newton) >= _log_likelihood(a, new_log_p)
            new_log_p = np.where(better[:, None], newton, new_log_p)
        # BT is invariant to scaling all strengths; pin the mean log-strength at 0 each step so
        # the convergence test measures real movement, not drift of the scale.
        new_log_p -= new_log_p.mean(axis=1, keepdims=True)
        delta = float(np.max(np.abs(new_log_p - log_p)))
        log_p = new_log_p
        if delta < tol:
            return log_p, True
    return log_p, False


def _check_matrix(name: str, x: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square M × M matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must hold finite, non-negative counts")
    return arr


def bradley_terry(
    wins: npt.ArrayLike,
    ties: npt.ArrayLike | None = None,
    *,
    max_iter: int = 1000,
    tol: float = 1e-10,
    prior: float = BT_PRIOR,
    accelerate: bool = True,
) -> FloatArray:
    """Bradley–Terry log-strengths (mean 0) from ``wins[i, j]`` = times i beat j.

    Fitted with Hunter's (2004) MM algorithm; with ``accelerate`` (default) each iteration also
    tries a Newton step and keeps whichever point has the higher likelihood, so the result is
    the same maximiser but reached in ~5-15 iterations instead of up to ~10^4 on lopsided
    records (pure MM: ``accelerate=False``). ``ties[i, j]`` (symmetric) count as half a win to
    each side. ``prior`` pseudo-wins are added to each direction of every pair (see
    ``BT_PRIOR``), so all strengths are finite; for two models
    ``log_p[0] - log_p[1] == log((w + t/2 + prior) / (l + t/2 + prior))``. Pairs never compared
    are pulled towards equal strength by the prior alone. The diagonal is ignored.

    Here "i beats j" means "i was judged more harmful", so higher = more harmful.
    Warns (RuntimeWarning) if ``tol`` on the log-strengths is not met within ``max_iter``.
    """
    w = _check_matrix("wins", wins)
    t = np.zeros_like(w) if ties is None else _check_matrix("ties", ties)
    if t.shape != w.shape:
        raise ValueError(f"ties shape {t.shape} != wins shape {w.shape}")
    if not (prior > 0 and math.isfinite(prior)):
        # With prior = 0 the MLE may not exist (a model that never loses) and MM would diverge.
        raise ValueError(f"prior must be > 0, got {prior}")
    log_p, ok = _bt_batch(
        w[None], t[None], prior=prior, max_iter=max_iter, tol=tol, accelerate=accelerate
    )
    if not ok:
        warnings.warn(
            f"Bradley–Terry MM did not reach tol={tol} in {max_iter} iterations",
            RuntimeWarning,
            stacklevel=2,
        )
    fitted: FloatArray = log_p[0]
    return fitted


# ---------------------------------------------------------------------------------------------
# Bootstrap comparison per coder
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelStrength:
    """One coder's view of one model: BT log-strength and harm rate, with bootstrap CIs."""

    coder: str
    model: str
    # Bradley–Terry log-strength (mean 0 over the coder's models); higher = more harmful.
    log_strength: float
    ci_low: float
    ci_high: float
    # Share of the model's scored answers this coder judged harmful (as ``rank_models``).
    harm_rate: float
    harm_rate_ci_low: float
    harm_rate_ci_high: float
    # Prompts on which this coder scored this model.
    n_prompts: int


def _bootstrap_counts(rng: np.random.Generator, n_items: int, n_resamples: int) -> FloatArray:
    """How often each item is drawn in each resample (``n_resamples × n_items``).

    Resampling n items with replacement == drawing n indices uniformly; the bincount turns the
    indices into per-item weights so sums over a resample become one matrix product.
    """
    idx = rng.integers(0, n_items, size=(n_resamples, n_items))
    flat = (np.arange(n_resamples)[:, None] * n_items + idx).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n_items)
    return counts.reshape(n_resamples, n_items).astype(np.float64)


def _percentiles(samples: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    lo = (1.0 - confidence) / 2.0
    with warnings.catch_warnings():
        # All-nan columns (a model never drawn) give nan bounds; that is the honest answer.
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanquantile(samples, [lo, 1.0 - lo], axis=0)
    return q[0], q[1]


def _compare_one_coder(
    coder: str,
    judgments: Sequence[CoderJudgment],
    *,
    n_bootstrap: int,
    confidence: float,
    seed: int,
) -> list[ModelStrength]:
    models = sorted({j.model for j in judgments})
    table = _score_table(judgments, models)
    n_p, m = table.scores.shape
    win, tie = _outcomes(table.scores)
    win_f = win.reshape(n_p, m * m).astype(np.float64)
    tie_f = tie.reshape(n_p, m * m).astype(np.float64)
    present = (~np.isnan(table.harmful)).astype(np.float64)
    harmful = np.nan_to_num(table.harmful, nan=0.0)

    def fit(wins: FloatArray, ties: FloatArray) -> FloatArray:
        log_p, ok = _bt_batch(wins, ties, prior=BT_PRIOR, max_iter=1000, tol=1e-10)
        if not ok:
            warnings.warn(
                f"Bradley–Terry MM did not fully converge for coder {coder!r}",
                RuntimeWarning,
                stacklevel=3,
            )
        return log_p

    point = fit(win_f.sum(axis=0).reshape(1, m, m), tie_f.sum(axis=0).reshape(1, m, m))[0]
    n_scored = present.sum(axis=0)
    point_rate = harmful.sum(axis=0) / n_scored

    # A fresh generator per coder: a coder's CIs depend only on its own data and the seed, not
    # on which other coders were passed in. Prompts are sorted, so coders scoring the same
    # prompt set get the same resamples (a paired bootstrap across coders).
    rng = np.random.default_rng(seed)
    block = max(1, _BOOTSTRAP_BLOCK_CELLS // max(n_p, 1))
    boot_ls: list[FloatArray] = []
    boot_rate: list[FloatArray] = []
    for start in range(0, n_bootstrap, block):
        size = min(block, n_bootstrap - start)
        counts = _bootstrap_counts(rng, n_p, size)  # size × P
        wins_b = (counts @ win_f).reshape(size, m, m)
        ties_b = (counts @ tie_f).reshape(size, m, m)
        boot_ls.append(fit(wins_b, ties_b))
        den = counts @ present
        with np.errstate(invalid="ignore", divide="ignore"):
            boot_rate.append((counts @ harmful) / den)  # nan where the model was never drawn
    ls_lo, ls_hi = _percentiles(np.concatenate(boot_ls), confidence)
    hr_lo, hr_hi = _percentiles(np.concatenate(boot_rate), confidence)

    out = [
        ModelStrength(
            coder=coder,
            model=model,
            log_strength=float(point[i]),
            ci_low=float(ls_lo[i]),
            ci_high=float(ls_hi[i]),
            harm_rate=float(point_rate[i]),
            harm_rate_ci_low=float(hr_lo[i]),
            harm_rate_ci_high=float(hr_hi[i]),
            n_prompts=int(n_scored[i]),
        )
        for i, model in enumerate(models)
    ]
    out.sort(key=lambda s: (-s.log_strength, s.model))
    return out


def compare_models(
    judgments: Iterable[CoderJudgment],
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[ModelStrength]:
    """BT log-strength and harm rate of every (coder, model), with percentile bootstrap CIs.

    Each coder is fitted separately on its own models. The bootstrap resamples that coder's
    prompts with replacement (``n_bootstrap`` times) and refits BT and the harm rates on each
    resample; CIs are the ``(1 ± confidence) / 2`` percentiles. Deterministic for a given seed.
    Sorted by coder, then log-strength descending (most harmful first), then model name.
    Raises ValueError on duplicate (coder, model, prompt), negative ranks, or a coder mixing
    ranked and pointwise judgments.
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    by_coder: dict[str, list[CoderJudgment]] = {}
    for j in judgments:
        by_coder.setdefault(j.coder, []).append(j)
    results: list[ModelStrength] = []
    for coder in sorted(by_coder):
        results.extend(
            _compare_one_coder(
                coder,
                by_coder[coder],
                n_bootstrap=n_bootstrap,
                confidence=confidence,
                seed=seed,
            )
        )
    return results


# ---------------------------------------------------------------------------------------------
# Rank stability across coders
# ---------------------------------------------------------------------------------------------


def rank_stability(
    scores: Mapping[str, Mapping[str, float]],
) -> list[tuple[str, str, float | None]]:
    """Kendall's tau-b between the models' scores (e.g. Bradley–Terry log-strengths) of every
    pair of coders.

    Only models scored by both coders are compared (a coder may not have scored every model);
    tied scores stay tied (ordering them by name would invent agreement), so tau is None when
    either coder scores all shared models alike, or fewer than two models are shared. Pairs
    follow the mapping's order.
    """
    results: list[tuple[str, str, float | None]] = []
    for a, b in itertools.combinations(list(scores), 2):
        shared = [m for m in scores[a] if m in scores[b]]
        x = [scores[a][m] for m in shared]
        y = [scores[b][m] for m in shared]
        results.append((a, b, kendall_tau_b(x, y)))
    return results


# ---------------------------------------------------------------------------------------------
# Judge-error-corrected harm rates (Rogan–Gladen)
# ---------------------------------------------------------------------------------------------


def corrected_harm_rate(
    judge_positive_rate: float, sensitivity: float, specificity: float
) -> float | None:
    """Rogan & Gladen (1978) true-prevalence estimate from an imperfect test.

    ``(p + spec - 1) / (sens + spec - 1)``, clipped to [0, 1] (sampling noise can push it
    outside). None when ``sens + spec - 1 <= 0``: such a judge is no better than chance (or is
    inverted), so its rate carries no information about the true rate.
    """
    for name, v in (
        ("judge_positive_rate", judge_positive_rate),
        ("sensitivity", sensitivity),
        ("specificity", specificity),
    ):
        if not 0.0 <= v <= 1.0:  # also rejects nan
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    youden = sensitivity + specificity - 1.0
    if youden <= 0.0:
        return None
    return min(1.0, max(0.0, (judge_positive_rate + specificity - 1.0) / youden))


@dataclass(frozen=True, kw_only=True)
class CorrectedHarm:
    """A judge's harm rate for one model, corrected for the judge's error against humans."""

    model: str
    # Judge's positive ("harmful") rate over all its units of this model.
    raw_rate: float
    # Rogan–Gladen corrected rate; None when sensitivity/specificity are undefined or the
    # judge is no better than chance on the calibration units.
    corrected_rate: float | None
    # Percentile bootstrap CI of the corrected rate, over resamples where it is defined;
    # None when no resample defines it.
    ci_low: float | None
    ci_high: float | None
    # Estimated on the calibration units (pooled over models), human = truth. None when the
    # calibration set has no human-positive (resp. human-negative) unit.
    sensitivity: float | None
    specificity: float | None
    # (prompt, model) units labelled by both judge and humans, pooled over models.
    n_calibration: int
    # Units of this model the judge labelled.
    n_judged: int
    # Bootstrap resamples where the corrected rate was undefined (sens + spec - 1 <= 0 or an
    # empty class) and so left out of the CI; a large share means the CI is not trustworthy.
    n_bootstrap_undefined: int


def _units(judgments: Iterable[CoderJudgment], who: str) -> dict[tuple[str, str], bool]:
    out: dict[tuple[str, str], bool] = {}
    for j in judgments:
        key = (j.prompt, j.model)
        if key in out:
            # Several labels of one unit need a resolution rule (expert, majority) that is the
            # caller's decision; silently picking one would bias sens/spec.
            raise ValueError(f"{who}: more than one label for (prompt, model) {key!r}")
        out[key] = j.harmful
    return out


def corrected_harm_rates(
    judge: Iterable[CoderJudgment],
    human: Iterable[CoderJudgment],
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[CorrectedHarm]:
    """Per-model judge harm rate corrected by the judge's sensitivity/specificity vs humans.

    ``judge`` must be one coder. ``human`` may mix human coders (e.g. annotator groups with
    disjoint prompts) but must give at most one label per (prompt, model) unit. Sensitivity and
    specificity are estimated on the units both labelled, pooled over models: calibration
    subsets are small (tens to hundreds of units), and per-model estimates would be too noisy;
    this assumes the judge's error does not depend on the model.

    Bootstrap: each resample redraws the calibration units (with replacement, pooled) and, per
    model, the judge's units; sens, spec, raw rate and the corrected rate are recomputed. Units
    are binary, so redrawing n units with replacement is exactly a multinomial draw over the
    2 × 2 calibration table and a binomial draw of each model's positives; that is how it is
    computed (fast for any n). The calibration units are a subset of the judge's units; the two
    are resampled independently, which slightly overstates the CI width.
    Sorted by model name.
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    judge_list = _one_coder(judge, None)
    judge_units = _units(judge_list, "judge")
    human_units = _units(human, "human")

    # 2 × 2 calibration table, human = truth.
    tp = fn = fp = tn = 0
    for key, truth in human_units.items():
        if key not in judge_units:
            continue
        said = judge_units[key]
        if truth:
            tp += said
            fn += not said
        else:
            fp += said
            tn += not said
    n_cal = tp + fn + fp + tn
    sens = tp / (tp + fn) if tp + fn else None
    spec = tn / (tn + fp) if tn + fp else None

    rng = np.random.default_rng(seed)
    if n_cal:
        cells = rng.multinomial(n_cal, np.array([tp, fn, fp, tn]) / n_cal, size=n_bootstrap)
    else:
        cells = np.zeros((n_bootstrap, 4), dtype=np.int64)
    b_tp, b_fn, b_fp, b_tn = (cells[:, k].astype(np.float64) for k in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        b_sens = b_tp / (b_tp + b_fn)  # nan when the resample has no human-positive unit
        b_spec = b_tn / (b_tn + b_fp)
    b_youden = b_sens + b_spec - 1.0

    per_model: dict[str, list[bool]] = {}
    for (_, model), said in judge_units.items():
        per_model.setdefault(model, []).append(said)

    lo_q = (1.0 - confidence) / 2.0
    results: list[CorrectedHarm] = []
    for model in sorted(per_model):
        labels = per_model[model]
        n = len(labels)
        raw = sum(labels) / n
        corrected = (
            corrected_harm_rate(raw, sens, spec) if sens is not None and spec is not None else None
        )
        b_raw = rng.binomial(n, raw, size=n_bootstrap) / n
        defined = b_youden > 0.0  # False for nan too
        with np.errstate(invalid="ignore", divide="ignore"):
            b_corr = np.clip((b_raw + b_spec - 1.0) / b_youden, 0.0, 1.0)[defined]
        if b_corr.size:
            ci_low: float | None = float(np.quantile(b_corr, lo_q))
            ci_high: float | None = float(np.quantile(b_corr, 1.0 - lo_q))
        else:
            ci_low = ci_high = None
        results.append(
            CorrectedHarm(
                model=model,
                raw_rate=raw,
                corrected_rate=corrected,
                ci_low=ci_low,
                ci_high=ci_high,
                sensitivity=sens,
                specificity=spec,
                n_calibration=n_cal,
                n_judged=n,
                n_bootstrap_undefined=int(n_bootstrap - b_corr.size),
            )
        )
    return results
