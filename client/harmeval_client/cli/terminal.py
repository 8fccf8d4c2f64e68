"""What the CLI draws for a person at a terminal: progress bars on standard error, and tables
that fit the terminal's width without cutting names."""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len, chop_cells
from rich.console import Console
from rich.progress import Progress, ProgressColumn
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "print_table", "progress", "stderr_is_terminal", "wrap_name"]


def stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty())


def progress(*columns: str | ProgressColumn, show: bool = True) -> Progress:
    """A progress display on standard error, drawn only when standard error is a terminal:
    standard output carries the command's result alone (`--json | jq` works), and a log file
    or a CI capture gets no bar."""
    return Progress(
        *columns, console=Console(stderr=True), disable=not (show and stderr_is_terminal())
    )


@dataclass(frozen=True)
class Column:
    """A column of a terminal table."""

    header: str
    justify: Literal["left", "right"] = "left"
    name: bool = False
    """Holds names (coders, models): never cut; wrapped after a "-" when space is short."""
    optional: int = 0
    """> 0: left out when the table would not fit the terminal otherwise, the highest first
    (`--wide` keeps every column)."""
    max_width: int | None = None
    """Prose: wrapped at spaces to at most this width, also in wide tables."""


def _overhead(n_columns: int) -> int:
    # Rich's default box, one space of padding each side: "│ " + " " per column, "│" last.
    return 3 * n_columns + 1


# After a hyphen, underscore, slash, "=", "," or a space: where a name can be broken and
# still be read ("qwen2.5" is not broken at its dot).
_BREAKS = re.compile(r"(?<=[-_/=, ])")
_SPACES = re.compile(r"\s+")
NAME_COMFORT = 20
"""Optional columns are left out before names are wrapped to lines shorter than this."""
NAME_FLOOR = 12
"""Name columns are not made narrower than this before other cells wrap."""
PROSE_FLOOR = 20
"""Prose columns are not made narrower than this before headers and names wrap."""


def wrap_name(name: str, width: int) -> str:
    """`name` in lines of at most `width` cells, broken after "-", "_", "/", "=", "," or a space
    (a piece longer than a line is split where it must); every character kept, in order."""
    width = max(width, 1)
    lines: list[str] = []
    line = ""
    for piece in (p for p in _BREAKS.split(name) if p):
        if line and cell_len(line + piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
        while cell_len(line.rstrip()) > width:
            head, *_ = chop_cells(line, width)
            lines.append(head)
            line = line[len(head) :]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return "\n".join(lines)


def _longest_line(text: str) -> int:
    return max((cell_len(line) for line in text.splitlines()), default=0)


def _longest_word(text: str, breaks: re.Pattern[str] = _SPACES) -> int:
    return max((cell_len(w.strip()) for w in breaks.split(text)), default=0)


def _natural(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    """Each column's width with nothing wrapped (prose: its `max_width`)."""
    return [
        min(
            max(_longest_line(v) for v in (c.header, *(r[i] for r in rows))),
            c.max_width or sys.maxsize,
        )
        for i, c in enumerate(columns)
    ]


def _widths(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
) -> tuple[list[int], list[int]]:
    """(kept column indices, their widths) for a table at most `width` cells wide: optional
    columns left out (highest first) while the table cannot fit with names in lines of
    NAME_COMFORT and numbers whole, then columns narrowed in the order that costs least."""
    natural = _natural(columns, rows)
    body = [[r[i] for r in rows] for i in range(len(columns))]
    # Headers may break after a hyphen or space; other cells at spaces.
    header_word = [_longest_word(c.header, _BREAKS) for c in columns]
    minimum = [
        min(natural[i], max(header_word[i], *map(_longest_word, body[i])))
        for i in range(len(columns))
    ]
    # Every cell on one line, the header wrapped.
    cells_only = [
        min(natural[i], max(header_word[i], *map(_longest_line, body[i])))
        for i in range(len(columns))
    ]
    names = {i for i, c in enumerate(columns) if c.name}
    prose = {i for i, c in enumerate(columns) if c.max_width is not None and i not in names}
    comfortable = [
        min(natural[i], NAME_COMFORT)
        if i in names
        else max(minimum[i], min(natural[i], PROSE_FLOOR))
        if i in prose
        else cells_only[i]
        for i in range(len(columns))
    ]
    kept = list(range(len(columns)))

    def room() -> int:
        return width - _overhead(len(kept))

    while sum(comfortable[i] for i in kept) > room() and any(columns[i].optional for i in kept):
        kept.remove(max(kept, key=lambda i: (columns[i].optional, i)))
    widths = {i: natural[i] for i in kept}

    def narrow(among: Collection[int], floor: Sequence[int]) -> None:
        # The widest column a cell at a time, so the space lost is shared out evenly.
        while sum(widths.values()) > room():
            shrinkable = [i for i in kept if i in among and widths[i] > floor[i]]
            if not shrinkable:
                return
            widths[max(shrinkable, key=lambda i: widths[i])] -= 1

    others = set(kept) - names
    # Prose wraps first (to a readable width), then headers wider than their cells (one line
    # more for the whole table), then names after their hyphens, as numbers such as
    # "0.25 [0.20, 0.31]" read best whole; then other cells wrap at spaces; below that, every
    # cell folds (never "…").
    narrow(prose, comfortable)
    narrow(others, cells_only)
    narrow(names, [min(n, NAME_FLOOR) for n in natural])
    narrow(others, minimum)
    narrow(kept, [1] * len(columns))
    return kept, [widths[i] for i in kept]


def print_table(
    console: Console,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    wide: bool = False,
    caption: str | None = None,
    section_ends: Collection[int] = (),
) -> None:
    """Prints a table that fits `console.width`: optional columns left out and names wrapped
    as needed, nothing cut off with "…". `wide`: every column, names on one line, however
    wide the table gets."""
    if wide:
        kept, widths = list(range(len(columns))), _natural(columns, rows)
    else:
        kept, widths = _widths(columns, rows, console.width)
    left_out = [c.header for i, c in enumerate(columns) if i not in kept]
    if left_out:
        note = f"Left out to fit the terminal: {', '.join(left_out)} (--wide shows them)."
        caption = f"{caption} {note}" if caption else note
    table = Table(title=title, caption=caption)
    for i, w in zip(kept, widths, strict=True):
        c = columns[i]
        header = c.header if wide or cell_len(c.header) <= w else wrap_name(c.header, w)
        table.add_column(
            header,
            justify=c.justify,
            width=w,
            overflow="fold",
            no_wrap=wide and c.max_width is None,
        )
    for n, row in enumerate(rows):
        cells = [
            Text(wrap_name(row[i], w) if columns[i].name and not wide else row[i])
            for i, w in zip(kept, widths, strict=True)
        ]
        table.add_row(*cells, end_section=n in section_ends)
    needed = sum(widths) + _overhead(len(widths))
    if needed <= console.width:
        console.print(table)
        return
    saved = console.width
    console.width = needed
    try:
        console.print(table)
    finally:
        console.width = saved
