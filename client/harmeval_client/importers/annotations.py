"""Parser for users' own human harm annotations (CSV or JSONL).

One record per CSV row or JSONL line, with these fields (names case-insensitive; other fields
are ignored):

* ``study`` (required): the study the annotation belongs to.
* ``prompt`` (required): the prompt's external id *or* its exact text; which one is decided
  where the rows are matched against a study, not here.
* ``model`` (required): the small model whose answer was annotated.
* ``annotator`` (required): who annotated (a person, or a group that annotated together).
* ``value`` (optional): pointwise harm label - 0/1, or any finite number (e.g. a 1-5 scale).
  JSON ``true``/``false`` are read as 1/0.
* ``rank`` (optional): listwise rank among the prompt's answers, a non-negative integer with
  ``0`` or ``N/A`` (also ``NA``, ``n/a``) meaning "not harmful".

At least one of ``value`` and ``rank`` must be given in every record. Leading and trailing
spaces are trimmed from every field. Files must be UTF-8 (a BOM is tolerated): a user's own
file that is not is reported rather than guessed at.

Every problem raises :class:`AnnotationFileError`, whose message reads
``"<file> line <n>: field '<f>' <what was wrong>"`` (CSV header = line 1; a quoted cell that
spans several lines reports the line the row starts on).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from harmeval_client.tables import TableFileError, read_table, text_field

__all__ = ["AnnotationFileError", "AnnotationRow", "load_annotation_file"]

_KEY_FIELDS = ("study", "prompt", "model", "annotator")
_NA = re.compile(r"n\s*/?\s*a", re.IGNORECASE)


class AnnotationFileError(TableFileError):
    """An annotation file cannot be read or is invalid."""


def _number(
    source: str, line: int, name: str, value: object, error: type[TableFileError]
) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        # JSON writers emit true/false for binary labels; they mean 1/0 here.
        return 1.0 if value else 0.0
    number: float
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise error(source, f"must be a number, got {value!r}", line=line, field=name) from None
    else:
        raise error(source, f"must be a number, got {type(value).__name__}", line=line, field=name)
    if not math.isfinite(number):
        raise error(source, f"must be a finite number, got {value!r}", line=line, field=name)
    return number


def _rank(
    source: str, line: int, name: str, value: object, error: type[TableFileError]
) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and _NA.fullmatch(value.strip()):
        return 0
    rank: int | None = None
    if isinstance(value, bool):
        rank = None  # true/false is no rank
    elif isinstance(value, int):
        rank = value
    elif isinstance(value, float) and value.is_integer():
        rank = int(value)  # 2.0 from a spreadsheet export is rank 2
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        rank = int(value.strip())
    if rank is None:
        raise error(
            source,
            f"must be a whole number or N/A, got {value!r}",
            line=line,
            field=name,
        )
    if rank < 0:
        raise error(
            source, f"must be 0 or more (0 or N/A = not harmful), got {rank}", line=line, field=name
        )
    return rank


@dataclass(frozen=True)
class AnnotationRow:
    line: int
    """1-based line of the record in its file (CSV header = line 1)."""
    study: str
    prompt: str
    """The prompt's external id or its exact text (trimmed)."""
    model: str
    annotator: str
    value: float | None
    """Pointwise harm label; None where only a rank was given."""
    rank: int | None
    """Listwise rank, 0 = not harmful; None where only a value was given."""


def load_annotation_file(path: Path) -> list[AnnotationRow]:
    """Load and validate an annotation file (``.csv`` or ``.jsonl``); see the module docstring.

    Raises :class:`AnnotationFileError` on the first problem: unreadable or empty file,
    missing column, empty required field, wrong type, neither ``value`` nor ``rank``, or the
    same (study, prompt, model, annotator) twice in the file (the error names both lines; two
    labels from one annotator for one answer cannot both be right).
    """
    path = Path(path)
    source = str(path)
    error = AnnotationFileError
    table = read_table(path, error, required=_KEY_FIELDS, any_of=("value", "rank"))
    rows: list[AnnotationRow] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for line, record in table.rows:
        study, prompt, model, annotator = (
            text_field(source, line, record, name, error) for name in _KEY_FIELDS
        )
        value = _number(source, line, "value", record.get("value"), error)
        rank = _rank(source, line, "rank", record.get("rank"), error)
        if value is None and rank is None:
            raise error(
                source, "and 'rank' are both empty; give at least one", line=line, field="value"
            )
        key = (study, prompt, model, annotator)
        if key in seen:
            raise error(
                source,
                f"repeats the (study, prompt, model, annotator) of line {seen[key]}: "
                f"{annotator!r} already annotated {model!r} for this prompt",
                line=line,
                field="annotator",
            )
        seen[key] = line
        rows.append(AnnotationRow(line, study, prompt, model, annotator, value, rank))
    return rows
