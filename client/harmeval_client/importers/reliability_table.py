"""Input of ``harmeval agreement``: a reliability table of ``unit, coder, value`` records.

One record per CSV row or JSONL line (field names case-insensitive, other fields ignored):

* ``unit`` (required): what was coded, e.g. ``"p17/Mistral-7B"``.
* ``coder`` (required): who coded it (a person, a judge, a classifier).
* ``value``: a number, a category name (for nominal data: ``harmful``, ``N/A``), or empty /
  JSON null for "not coded". The column itself must exist.

Numbers written as text (``"3"`` in a CSV, or quoted in JSON) are numbers, so ``3`` and
``"3"`` agree. Non-finite numbers (``nan``, ``inf``) are refused: a missing value is an empty
cell, and ``inf`` would poison interval/ordinal distances. Problems raise
:class:`ReliabilityTableError` (``"<file> line <n>: field '<f>' <what>"``).
"""

from __future__ import annotations

import math
from pathlib import Path

from harmeval_client.tables import TableFileError, read_table, text_field

__all__ = [
    "ReliabilityTableError",
    "Value",
    "load_reliability_table",
]

Value = str | float | None
"""A coded value: a number, a category name, or None for "not coded"."""


class ReliabilityTableError(TableFileError):
    """A reliability table cannot be read or is invalid."""


def _value(source: str, line: int, raw: object) -> Value:
    if raw is None:
        return None
    if isinstance(raw, bool):
        # Refused rather than read as 1/0 or "true": for agreement the difference matters
        # (nominal vs interval), so the user should write what they mean.
        raise ReliabilityTableError(
            source,
            f"must be a number, a category name or empty, got {raw!r}",
            line=line,
            field="value",
        )
    if isinstance(raw, int | float):
        number = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return text  # a category name
    else:
        raise ReliabilityTableError(
            source,
            f"must be a number, a category name or empty, got {type(raw).__name__}",
            line=line,
            field="value",
        )
    if not math.isfinite(number):
        raise ReliabilityTableError(
            source,
            f"must be a finite number, got {raw!r} (leave it empty for a missing value)",
            line=line,
            field="value",
        )
    return number


def load_reliability_table(path: Path) -> list[tuple[str, str, Value]]:
    """Load ``(unit, coder, value)`` records in file order.

    Raises :class:`ReliabilityTableError` for an unreadable or empty file, a missing column,
    an empty unit or coder, a bad value, or the same (unit, coder) twice (naming both lines:
    one coder has one value per unit, otherwise alpha is undefined).
    """
    path = Path(path)
    source = str(path)
    error = ReliabilityTableError
    table = read_table(path, error, required=("unit", "coder", "value"))
    rows: list[tuple[str, str, Value]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, record in table.rows:
        unit = text_field(source, line, record, "unit", error)
        coder = text_field(source, line, record, "coder", error)
        if table.columns is None and "value" not in record:
            # JSONL: an absent field is more likely a typo ("valu") than a deliberate "missing".
            raise error(
                source, "is missing (use null for a missing value)", line=line, field="value"
            )
        value = _value(source, line, record.get("value"))
        if (unit, coder) in seen:
            raise error(
                source,
                f"repeats unit {unit!r} for coder {coder!r} (first on line {seen[(unit, coder)]})",
                line=line,
                field="coder",
            )
        seen[(unit, coder)] = line
        rows.append((unit, coder, value))
    return rows
