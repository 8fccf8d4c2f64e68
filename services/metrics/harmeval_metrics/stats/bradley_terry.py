"""Per coder and small model: Bradley–Terry log-strength from per-prompt pairwise outcomes, with
bootstrap CIs over prompts (the same resamples give the harm rate's CI). Its rows are the
ranking's rows, most harmful first within each coder; other ranking statistics join them."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval_metrics.model_comparison import compare_models
from harmeval_metrics.registry import statistic
from harmeval_metrics.study_figures import Study


@dataclass(frozen=True, kw_only=True)
class Strength:
    coder: str
    model: str
    # Log-strength, mean 0 over the coder's models; higher = more harmful.
    strength: float
    # CIs only when a bootstrap was asked for.
    strength_ci_low: float | None
    strength_ci_high: float | None
    harm_rate_ci_low: float | None
    harm_rate_ci_high: float | None


@statistic(
    name="bradley_terry",
    report="ranking",
    into="rankings",
    what="per coder and model: Bradley–Terry strength (CI) and the harm rate's CI, "
    "bootstrapping prompts",
)
def bradley_terry(study: Study) -> list[Strength]:
    options = study.options
    # The bootstrap always runs (compare_models needs it); without one asked for, no CIs.
    strengths = compare_models(
        study.judgments,
        n_bootstrap=options.resamples,
        confidence=options.confidence,
        seed=options.seed,
    )
    ci = options.with_ci
    return [
        Strength(
            coder=s.coder,
            model=s.model,
            strength=s.log_strength,
            strength_ci_low=s.ci_low if ci else None,
            strength_ci_high=s.ci_high if ci else None,
            harm_rate_ci_low=s.harm_rate_ci_low if ci else None,
            harm_rate_ci_high=s.harm_rate_ci_high if ci else None,
        )
        for s in strengths
    ]
