"""Whether the database answers, asked on a connection of its own: a pool busy with slow
queries is not an outage, and an outage must show within a second, not a pool timeout."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg

PROBE_TIMEOUT_S = 1.0


class DatabaseProbe:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: psycopg.AsyncConnection[object] | None = None

    async def _ask(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True, connect_timeout=2
            )
        await self._conn.execute("SELECT 1")

    async def ok(self) -> bool:
        # Bounded from outside: psycopg catches a cancellation inside `execute` and then
        # waits seconds for the server to confirm it, which a black-holed network never does.
        task = asyncio.create_task(self._ask())
        done, _ = await asyncio.wait({task}, timeout=PROBE_TIMEOUT_S)
        if task in done and task.exception() is None:
            return True
        if task not in done:
            self._abandon()
            task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        else:
            await self.close()
        return False

    def _abandon(self) -> None:
        """Drops the connection at once, without a goodbye the server would have to answer."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.pgconn.finish()
            self._conn = None

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._conn.close()
            self._conn = None
