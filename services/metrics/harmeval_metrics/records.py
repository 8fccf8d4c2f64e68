"""What the metrics service reads and validates: a study's answers and labels (read through
the generator's and the judge's published views) and imports checked before they are sent
to the owning services."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval.params import GenerationParams
from harmeval.verdicts import VerdictStatus


@dataclass(frozen=True, kw_only=True)
class PromptIn:
    text: str
    category: str = "uncategorized"
    external_id: str = ""


@dataclass(frozen=True, kw_only=True)
class StudyModelIn:
    name: str
    model_name: str
    params: GenerationParams


@dataclass(frozen=True, kw_only=True)
class ImportAnswer:
    prompt_index: int
    model: str
    text: str


@dataclass(frozen=True, kw_only=True)
class ImportLabel:
    prompt_index: int
    model: str
    coder: str
    annotator: str
    annotator_kind: str
    status: VerdictStatus
    harmful: bool | None
    value: float | None
    rank: int | None
    raw_output: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Annotation:
    """A human label of a stored answer."""

    generation_id: int
    annotator: str
    harmful: bool
    value: float | None
    rank: int | None


@dataclass(frozen=True, kw_only=True)
class StudyLabel:
    """One annotator's label of one unit (prompt, study model) of a study."""

    coder: str
    annotator: str
    coder_kind: str
    prompt_id: int
    external_id: str
    category: str
    model: str
    generation_id: int
    status: VerdictStatus
    harmful: bool | None
    rank: int | None
    value: float | None
    order_sensitive: bool = False


@dataclass(frozen=True, kw_only=True)
class StudyAnswer:
    prompt_id: int
    external_id: str
    prompt_text: str
    category: str
    generation_id: int
    model: str
    text: str
    flags: list[str]


# The protocol of labels that came with a data set: importing it again replaces them.
IMPORTED_PROTOCOL = "imported"


def imported_model(study: str, model: str) -> str:
    """The model an imported answer is stored under: scoped to its study (reports show the
    study's own name for it)."""
    return f"{study}/{model}"
