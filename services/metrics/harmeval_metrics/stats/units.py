"""The study's labelled units and, where three or more people labelled a unit, the name of the
human-consensus pseudo-coder the agreement pairs include."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval_metrics.registry import statistic
from harmeval_metrics.study_figures import CONSENSUS, Study


@dataclass(frozen=True, kw_only=True)
class StudyUnits:
    # (prompt, small model) units with any label, scorable or not.
    n_units: int
    # "" when no consensus was formed.
    consensus_coder: str


@statistic(
    name="units",
    report="agreement",
    into=None,
    what="units labelled; the human-consensus pseudo-coder, when one is formed",
)
def units(study: Study) -> StudyUnits:
    return StudyUnits(
        n_units=len({(lb.prompt_id, lb.model) for lb in study.labels}),
        consensus_coder=CONSENSUS if study.consensus else "",
    )
