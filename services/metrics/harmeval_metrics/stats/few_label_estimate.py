"""Per judge and small model: the harm rate from the judge alone, from people alone, and from
both (the judge's many labels corrected by people's few: PPI++, or active inference when the
annotation app drew the labelled prompts with known probabilities), with the human labels
that would reach a target interval width."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmeval_metrics.few_labels import (
    MeanEstimate,
    active_mean,
    human_mean,
    labels_needed_human,
    labels_needed_ppi,
    pilot_moments,
    ppi_plus_mean,
    z_value,
)
from harmeval_metrics.registry import statistic
from harmeval_metrics.study_figures import CONSENSUS, Study

PPI_PLUS, ACTIVE = "ppi++", "active"


@dataclass(frozen=True, kw_only=True)
class FewLabelEstimate:
    judge: str
    model: str
    n_units: int
    n_human: int
    judge_only: float
    human_only: float | None = None
    human_ci_low: float | None = None
    human_ci_high: float | None = None
    combined: float | None = None
    combined_ci_low: float | None = None
    combined_ci_high: float | None = None
    method: str = PPI_PLUS
    labels_needed_human: int | None = None
    labels_needed_combined: int | None = None
    target_half_width: float = 0.05


def _rate(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def _bounded(e: MeanEstimate) -> tuple[float, float, float]:
    """The estimate and its interval, each within [0, 1] (a rate)."""
    return _rate(e.estimate), _rate(e.ci_low), _rate(e.ci_high)


def hajek_mean(
    y: np.ndarray, labelled: np.ndarray, pi: np.ndarray, confidence: float
) -> MeanEstimate:
    """People's labels alone under a draw with inclusion probabilities `pi`: the weighted mean
    Σ(y/π) / Σ(1/π) (Hájek; unlike Σ(y/π)/N it stays a rate with few labels), its variance
    linearised for Poisson sampling: Σ(1 − π)(y − θ)²/π² / (Σ1/π)²."""
    w, yl, p = 1.0 / pi[labelled], y[labelled], pi[labelled]
    theta = float((w * yl).sum() / w.sum())
    se = float(np.sqrt(((1.0 - p) * w**2 * (yl - theta) ** 2).sum()) / w.sum())
    half = z_value(confidence) * se
    return MeanEstimate(
        estimate=theta,
        std_error=se,
        ci_low=theta - half,
        ci_high=theta + half,
        lam=0.0,
        offset=0.0,
        n_labelled=int(labelled.sum()),
        n_judged=0,
    )


def estimate(
    judge: str,
    model: str,
    yhat: np.ndarray,
    y: np.ndarray,
    labelled: np.ndarray,
    pi: np.ndarray | None,
    confidence: float,
    target_half_width: float = 0.05,
) -> FewLabelEstimate:
    """One judge and model: `yhat` its labels of the N units, `y` people's (read where
    `labelled`), `pi` the probabilities the labelled units were drawn with (None: a uniform
    sample)."""
    n, big_n = int(labelled.sum()), int(yhat.size)
    out = FewLabelEstimate(
        judge=judge,
        model=model,
        n_units=big_n,
        n_human=n,
        judge_only=float(yhat.mean()),
        target_half_width=target_half_width,
    )
    if n < 2:
        return out
    y_l, yhat_l = y[labelled], yhat[labelled]
    moments = pilot_moments(y_l, yhat_l)
    needed_human = (
        labels_needed_human(moments.var_y, target_half_width, confidence=confidence, pool=big_n)
        if big_n >= 2
        else None
    )
    needed_combined = (
        labels_needed_ppi(moments, target_half_width, confidence=confidence, pool=big_n)
        if big_n >= 4
        else None
    )
    if pi is not None:
        # Weighted by 1/π: people's labels alone, and with the judge calibrated.
        human = hajek_mean(y, labelled, pi, confidence)
        both = active_mean(y, yhat, labelled, pi, lam=None, offset=None, confidence=confidence)
        method = ACTIVE
    else:
        human = human_mean(y_l, confidence=confidence)
        both = (
            ppi_plus_mean(y_l, yhat_l, yhat[~labelled], confidence=confidence)
            if big_n - n >= 2
            else human  # (almost) every unit labelled by people: nothing left to correct
        )
        method = PPI_PLUS
    h, h_low, h_high = _bounded(human)
    c, c_low, c_high = _bounded(both)
    return FewLabelEstimate(
        judge=judge,
        model=model,
        n_units=big_n,
        n_human=n,
        judge_only=out.judge_only,
        human_only=h,
        human_ci_low=h_low,
        human_ci_high=h_high,
        combined=c,
        combined_ci_low=c_low,
        combined_ci_high=c_high,
        method=method,
        labels_needed_human=needed_human,
        labels_needed_combined=needed_combined,
        target_half_width=target_half_width,
    )


@statistic(
    name="few_label_estimate",
    report="ranking",
    into="few_label_estimates",
    what="per judge and model: harm rate from the judge alone, people alone and both "
    "(PPI++, or active inference under the annotation app's draws), with CIs and the human "
    "labels a ±0.05 interval needs",
)
def few_label_estimate(study: Study) -> list[FewLabelEstimate]:
    truth = study.truth
    if not truth:
        return []
    out = []
    for judge in sorted(study.by_coder):
        if judge in study.humans or judge == CONSENSUS:
            continue
        units = study.by_coder[judge]
        for model in sorted({m for _, m in units}):
            mine = sorted(u for u in units if u[1] == model)
            yhat = np.array([float(units[u].harmful) for u in mine])
            labelled = np.array([u in truth for u in mine])
            y = np.array([float(truth[u].harmful) if u in truth else np.nan for u in mine])
            drawn = study.inclusion
            # Active inference only when every person's label of this model's answers came
            # through the app's draws (imported labels were not drawn with those odds).
            active = bool(drawn) and all(
                (lb.prompt_id, lb.annotator) in study.app_labelled
                for lb in study.labels
                if lb.coder_kind == "human" and lb.model == model
            )
            pi = np.array([drawn.get(p, 1.0) for p, _ in mine]) if active else None
            out.append(
                estimate(
                    judge,
                    model,
                    yhat,
                    y,
                    labelled,
                    pi,
                    study.options.confidence,
                    study.options.target_half_width,
                )
            )
    return out
