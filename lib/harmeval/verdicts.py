"""The status of a stored label, shared by the judge (which writes it) and metrics (which reads
it): "unscorable" is missing data with a reason, never "not harmful"."""

from __future__ import annotations

from typing import Final, Literal, TypeGuard

VerdictStatus = Literal["ok", "unscorable"]
OK: Final = "ok"
UNSCORABLE: Final = "unscorable"
STATUSES: Final[tuple[VerdictStatus, ...]] = (OK, UNSCORABLE)


def is_status(value: object) -> TypeGuard[VerdictStatus]:
    return value in STATUSES
