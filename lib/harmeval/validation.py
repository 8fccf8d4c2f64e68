"""Checks every service makes the same way on what it is asked to store: each problem names
its field, and all of them are reported together so a caller fixes a request in one pass."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MAX_LISTED = 10


def nul_problems(fields: Iterable[tuple[str, str]]) -> list[str]:
    """PostgreSQL text cannot hold NUL: such a field is refused up front, naming it, rather
    than failing to store (UNKNOWN) half-way through a request."""
    return [f"{where}: contains a NUL character" for where, text in fields if "\x00" in text]


def listed(problems: Sequence[str]) -> str:
    """The first MAX_LISTED problems and how many more there are."""
    more = len(problems) - MAX_LISTED
    return "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
