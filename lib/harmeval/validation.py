"""Checks every service makes the same way on what it is asked to store: each problem names
its field, and all of them are reported together so a caller fixes a request in one pass."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MAX_LISTED = 10
# Names (studies, models, judges, annotators) are keys of indexes and labels of reports: a
# 1 MB name is past any index row and no one's name.
MAX_NAME_CHARS = 200


def name_problems(fields: Iterable[tuple[str, str]]) -> list[str]:
    """Names too long, with NUL or other control characters, or only whitespace."""
    problems = []
    for where, name in fields:
        if len(name) > MAX_NAME_CHARS:
            problems.append(
                f"{where}: {len(name):,} characters; names have at most {MAX_NAME_CHARS}"
            )
        elif any(ord(c) < 32 or ord(c) == 127 for c in name):
            problems.append(f"{where}: contains a control character")
        elif name and not name.strip():
            problems.append(f"{where}: only whitespace")
    return problems


def listed(problems: Sequence[str]) -> str:
    """The first MAX_LISTED problems and how many more there are."""
    more = len(problems) - MAX_LISTED
    return "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
