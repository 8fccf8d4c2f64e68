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

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AnnotationFileError",
    "AnnotationRow",
    "TableFileError",
    "load_annotation_file",
    "read_table",
    "text_field",
]

_CSV_SUFFIXES = frozenset({".csv"})
_JSONL_SUFFIXES = frozenset({".jsonl", ".json-lines", ".ndjson"})

_KEY_FIELDS = ("study", "prompt", "model", "annotator")
_NA = re.compile(r"n\s*/?\s*a", re.IGNORECASE)


class TableFileError(ValueError):
    """A table file (CSV/JSONL) cannot be read or is invalid.

    ``str(error)`` reads ``"<file> line <n>: field '<f>' <detail>"``; ``line`` and ``field``
    are None for problems of the whole file (then ``"<file>: <detail>"``).
    """

    def __init__(
        self, file: str, detail: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.detail = detail
        where = file if line is None else f"{file} line {line}"
        what = detail if field is None else f"field '{field}' {detail}"
        super().__init__(f"{where}: {what}")


class AnnotationFileError(TableFileError):
    """An annotation file cannot be read or is invalid."""


Record = dict[str, object]


@dataclass(frozen=True)
class Table:
    """Rows of a CSV or JSONL file with lower-cased field names."""

    rows: list[tuple[int, Record]]
    """(1-based line where the record starts, field -> value)."""
    columns: frozenset[str] | None
    """CSV header names (lower-cased); None for JSONL, whose records name their own fields."""


def _decode(path: Path, error: type[TableFileError]) -> str:
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(source, f"cannot read file: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            source, f"not valid UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8"
        ) from exc


def _check_header(
    source: str,
    names: list[str],
    required: tuple[str, ...],
    any_of: tuple[str, ...],
    error: type[TableFileError],
) -> None:
    present = set(names)
    found = ", ".join(sorted(n for n in present if n)) or "none"
    for name in required:
        if name not in present:
            raise error(source, f"is missing from the header (found: {found})", line=1, field=name)
    if any_of and not present & set(any_of):
        others = " and ".join(f"'{name}'" for name in any_of[1:])
        raise error(
            source,
            f"and {others} are {'both' if len(any_of) == 2 else 'all'} missing from the header; "
            f"give at least one (found: {found})",
            line=1,
            field=any_of[0],
        )


def _csv_table(
    source: str,
    content: str,
    required: tuple[str, ...],
    any_of: tuple[str, ...],
    error: type[TableFileError],
) -> Table:
    reader = csv.reader(io.StringIO(content, newline=""))
    rows: list[tuple[int, Record]] = []
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise error(source, "is empty (no header row)")
        names = [cell.strip().lower() for cell in header]
        seen: set[str] = set()
        for name in names:
            if name and name in seen:
                raise error(source, "appears twice in the header", line=1, field=name)
            seen.add(name)
        # Header problems first: they explain every row error that would follow.
        _check_header(source, names, required, any_of, error)
        end_line = reader.line_num
        for cells in reader:
            # A quoted cell may span several lines: report the line the row starts on.
            line, end_line = end_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(names):
                raise error(
                    source,
                    f"row has {len(cells)} fields but the header has {len(names)} "
                    "(an unquoted comma inside a value?)",
                    line=line,
                )
            # A short row (trailing cells left off) means those cells are empty.
            cells = cells + [""] * (len(names) - len(cells))
            record: Record = {n: c for n, c in zip(names, cells, strict=True) if n}
            rows.append((line, record))
    except csv.Error as exc:
        raise error(source, f"malformed CSV: {exc}", line=reader.line_num) from exc
    return Table(rows, frozenset(n for n in names if n))


def _jsonl_table(source: str, content: str, error: type[TableFileError]) -> Table:
    rows: list[tuple[int, Record]] = []
    # Split on "\n" only: str.splitlines() would also split on characters (U+2028, \x1c...)
    # that are legal inside JSON strings.
    for line, text in enumerate(content.split("\n"), start=1):
        if not text.strip():
            continue
        try:
            value: object = json.loads(text)
        except json.JSONDecodeError as exc:
            raise error(source, f"invalid JSON: {exc.msg} (column {exc.colno})", line=line) from exc
        if not isinstance(value, dict):
            raise error(source, f"expected a JSON object, got {type(value).__name__}", line=line)
        record: Record = {}
        for key, item in value.items():
            name = str(key).strip().lower()
            if name in record:
                raise error(
                    source, "appears twice (names are case-insensitive)", line=line, field=name
                )
            record[name] = item
        rows.append((line, record))
    return Table(rows, None)


def read_table(
    path: Path,
    error: type[TableFileError],
    *,
    required: tuple[str, ...] = (),
    any_of: tuple[str, ...] = (),
) -> Table:
    """Read a ``.csv`` or ``.jsonl`` (``.json-lines``, ``.ndjson``) file into records.

    Blank lines/rows are skipped; a file without any record raises ``error``. A CSV header
    must name every ``required`` column and at least one of ``any_of`` (JSONL records are
    checked field by field by the caller). Shared by the annotation and reliability-table
    loaders so both report problems the same way.
    """
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in _CSV_SUFFIXES | _JSONL_SUFFIXES:
        kind = f"file type {suffix!r}" if suffix else "file without a suffix"
        raise error(source, f"unsupported {kind}; use .csv or .jsonl")
    content = _decode(path, error)
    if suffix in _CSV_SUFFIXES:
        table = _csv_table(source, content, required, any_of, error)
    else:
        table = _jsonl_table(source, content, error)
    if not table.rows:
        raise error(source, "has no rows")
    return table


def text_field(
    source: str, line: int, record: Record, name: str, error: type[TableFileError]
) -> str:
    """A required identifier: a non-empty string (JSON integers accepted, as ids often are)."""
    value = record.get(name)
    if value is None:
        raise error(source, "is missing", line=line, field=name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise error(
            source,
            f"must be a string, got {type(value).__name__} {value!r}",
            line=line,
            field=name,
        )
    text = str(value).strip()
    if not text:
        raise error(source, "is empty", line=line, field=name)
    return text


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
