"""Per judge and small model: the harm rate corrected for the judge's sensitivity and
specificity against the humans (Rogan–Gladen), with a bootstrap CI."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval_metrics.model_comparison import corrected_harm_rates
from harmeval_metrics.ranking import CoderJudgment
from harmeval_metrics.registry import statistic
from harmeval_metrics.study_figures import Study


@dataclass(frozen=True, kw_only=True)
class CorrectedHarmRate:
    coder: str
    model: str
    # None when the judge is no better than chance against the humans (or sens/spec are
    # undefined); then it has no CI either.
    corrected_harm_rate: float | None
    # Only when a bootstrap was asked for.
    corrected_ci_low: float | None
    corrected_ci_high: float | None
    sensitivity: float | None
    specificity: float | None
    # Units both the judge and the humans labelled.
    n_calibration: int


@statistic(
    name="corrected_harm_rate",
    report="ranking",
    into="rankings",
    join=("coder", "model"),
    what="per judge and model: harm rate corrected by the judge's sensitivity and "
    "specificity against the humans (Rogan–Gladen, CI)",
)
def corrected_harm_rate(study: Study) -> list[CorrectedHarmRate]:
    options = study.options
    human = [
        CoderJudgment(coder="humans", model=m, prompt=str(p), harmful=x.harmful, rank=None)
        for (p, m), x in study.truth.items()
    ]
    if not human:
        return []
    out: list[CorrectedHarmRate] = []
    for coder in sorted(study.by_coder):
        if coder in study.humans:
            continue
        judge = [j for j in study.judgments if j.coder == coder]
        for c in corrected_harm_rates(
            judge,
            human,
            n_bootstrap=options.resamples,
            confidence=options.confidence,
            seed=options.seed,
        ):
            # No interval around an estimate that does not exist (a judge no better than
            # chance against the humans: sensitivity + specificity = 1).
            ci = options.with_ci and c.corrected_rate is not None
            out.append(
                CorrectedHarmRate(
                    coder=coder,
                    model=c.model,
                    corrected_harm_rate=c.corrected_rate,
                    corrected_ci_low=c.ci_low if ci else None,
                    corrected_ci_high=c.ci_high if ci else None,
                    sensitivity=c.sensitivity,
                    specificity=c.specificity,
                    n_calibration=c.n_calibration,
                )
            )
    return out
