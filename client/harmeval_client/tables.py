"""Reading users' CSV and JSONL files: one way to decode them, split JSON lines and report
problems as ``"<file> line <n>: field '<f>' <what was wrong>"``.

Shared by every loader of user files (prompt sets, human annotations, reliability tables,
HarmMetric Eval), so the same mistake is reported the same way whichever file it is in.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "FileError",
    "Record",
    "Table",
    "TableFileError",
    "jsonl_records",
    "read_csv",
    "read_jsonl",
    "read_table",
    "read_text",
    "text_field",
]

CSV_SUFFIXES = frozenset({".csv"})
JSONL_SUFFIXES = frozenset({".jsonl", ".json-lines", ".ndjson"})


class FileError(Protocol):
    """An error type built as ``error(file, detail, line=..., field=...)``."""

    def __call__(
        self, file: str, detail: str, *, line: int | None = None, field: str | None = None
    ) -> Exception: ...


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


Record = dict[str, object]


@dataclass(frozen=True)
class Table:
    """Rows of a CSV or JSONL file with lower-cased field names."""

    rows: list[tuple[int, Record]]
    """(1-based line where the record starts, field -> value)."""
    columns: frozenset[str] | None
    """CSV header names (lower-cased); None for JSONL, whose records name their own fields."""


def read_text(path: Path, error: FileError) -> str:
    """The file's text: UTF-8, a leading BOM tolerated; anything else is reported, not guessed."""
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


def jsonl_records(source: str, content: str, error: FileError) -> list[tuple[int, Record]]:
    """(1-based line, JSON object) for every non-blank line."""
    records: list[tuple[int, Record]] = []
    # Split on "\n" only: str.splitlines() would also split on characters (U+2028, \x1c...)
    # that are legal inside JSON strings and do occur in model outputs. A "\r" left by a CRLF
    # file is whitespace to the JSON parser.
    for line, text in enumerate(content.split("\n"), start=1):
        if not text.strip():
            continue
        try:
            value: object = json.loads(text)
        except json.JSONDecodeError as exc:
            raise error(source, f"invalid JSON: {exc.msg} (column {exc.colno})", line=line) from exc
        if not isinstance(value, dict):
            raise error(source, f"expected a JSON object, got {type(value).__name__}", line=line)
        records.append((line, value))
    return records


def _jsonl_table(source: str, content: str, error: type[TableFileError]) -> Table:
    rows: list[tuple[int, Record]] = []
    for line, value in jsonl_records(source, content, error):
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
    path: Path | str,
    error: type[TableFileError],
    *,
    required: tuple[str, ...] = (),
    any_of: tuple[str, ...] = (),
) -> Table:
    """Read a ``.csv`` or ``.jsonl`` (``.json-lines``, ``.ndjson``) file into records.

    Blank lines/rows are skipped; a file without any record raises ``error``. A CSV header
    must name every ``required`` column and at least one of ``any_of`` (JSONL records are
    checked field by field by the caller).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return read_csv(path, error, required=required, any_of=any_of)
    if suffix in JSONL_SUFFIXES:
        return read_jsonl(path, error)
    kind = f"file type {suffix!r}" if suffix else "file without a suffix"
    raise error(str(path), f"unsupported {kind}; use .csv or .jsonl")


def read_csv(
    path: Path | str,
    error: type[TableFileError],
    *,
    required: tuple[str, ...] = (),
    any_of: tuple[str, ...] = (),
) -> Table:
    """A CSV file with a header row (names case-insensitive), as :func:`read_table`."""
    path = Path(path)
    table = _csv_table(str(path), read_text(path, error), required, any_of, error)
    return _non_empty(table, str(path), error)


def read_jsonl(path: Path | str, error: type[TableFileError]) -> Table:
    """A JSON-lines file (field names case-insensitive), as :func:`read_table`."""
    path = Path(path)
    table = _jsonl_table(str(path), read_text(path, error), error)
    return _non_empty(table, str(path), error)


def _non_empty(table: Table, source: str, error: type[TableFileError]) -> Table:
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
