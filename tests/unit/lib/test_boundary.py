"""Which status an error that escaped a handler becomes: retryable database trouble is
UNAVAILABLE or ABORTED, anything else INTERNAL (never UNKNOWN)."""

from __future__ import annotations

from typing import Any

import grpc
import psycopg_pool
import pytest
from psycopg import errors

from harmeval.boundary import _refuse, capped


class Aborted(Exception):
    pass


class Context:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.AdminShutdown("restart"), grpc.StatusCode.UNAVAILABLE),
        (errors.ConnectionFailure("gone"), grpc.StatusCode.UNAVAILABLE),
        (errors.QueryCanceled("statement timeout"), grpc.StatusCode.UNAVAILABLE),
        (psycopg_pool.PoolTimeout("no connection"), grpc.StatusCode.UNAVAILABLE),
        (errors.SerializationFailure("retry"), grpc.StatusCode.ABORTED),
        (errors.DeadlockDetected("retry"), grpc.StatusCode.ABORTED),
        (errors.ProgramLimitExceeded("index row too large"), grpc.StatusCode.INTERNAL),
        (KeyError("a bug"), grpc.StatusCode.INTERNAL),
    ],
)
async def test_errors_become_the_status_they_call_for(error: Exception, code: Any) -> None:
    context = Context()
    with pytest.raises(Aborted):
        await _refuse(error, "/x.Y/Z", context)
    assert context.code == code
    assert "a bug" not in context.details and "index row" not in context.details


def test_details_are_cut() -> None:
    assert capped("x" * 10) == "x" * 10
    long = capped("y" * 5000)
    assert len(long) < 1100 and long.endswith("[4000 more characters]")
