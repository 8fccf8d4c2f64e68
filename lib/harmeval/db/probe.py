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

    async def ok(self) -> bool:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True, connect_timeout=2
                    )
                await self._conn.execute("SELECT 1")
            return True
        except (psycopg.Error, OSError, TimeoutError):
            await self.close()
            return False

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._conn.close()
            self._conn = None
