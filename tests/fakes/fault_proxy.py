"""A TCP proxy in front of a service's dependency (Postgres, an LLM backend) that a test can
break: pass traffic, black-hole it (connections hang), reset every connection, or cut each
answer after its first bytes (an HTTP body or an SSE stream truncated mid-way); any mode can
add latency to every chunk.

Upstream is a TCP address or a unix socket (pgserver's PostgreSQL listens on one).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlparse

PASS, BLACK_HOLE, RESET, CUT_MID_BODY = "pass", "black-hole", "reset", "cut-mid-body"


class FaultProxy:
    def __init__(
        self, upstream_unix: str | None = None, upstream_tcp: tuple[str, int] | None = None
    ):
        self.upstream_unix, self.upstream_tcp = upstream_unix, upstream_tcp
        self.mode = PASS
        # CUT_MID_BODY: bytes of each answer (upstream to client) passed before the cut.
        self.cut_after_bytes = 0
        # Added before every chunk is passed on, both ways.
        self.latency_s = 0.0
        self.port = 0
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.upstream_unix is not None:
            return await asyncio.open_unix_connection(self.upstream_unix)
        assert self.upstream_tcp is not None
        return await asyncio.open_connection(*self.upstream_tcp)

    def set_mode(self, mode: str) -> None:
        """Changes what happens to traffic. RESET also cuts open connections; BLACK_HOLE
        keeps them open and drops whatever they carry (a network partition: nothing ever
        answers, nothing says so)."""
        self.mode = mode
        if mode == RESET:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bool = False
    ) -> None:
        """Copies one direction of a connection; `answer`: upstream to client."""
        passed = 0
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if self.mode == RESET:
                    break
                if self.mode == BLACK_HOLE:
                    continue  # swallowed
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)
                cut = answer and self.mode == CUT_MID_BODY
                if cut:
                    data = data[: max(0, self.cut_after_bytes - passed)]
                writer.write(data)
                await writer.drain()
                passed += len(data)
                if cut and passed >= self.cut_after_bytes:
                    break  # the rest of the answer never comes: the connection is cut
        writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == RESET:
            writer.transport.abort()
            return
        if self.mode == BLACK_HOLE:
            self._writers.add(writer)
            return  # accepted, never answered
        try:
            up_reader, up_writer = await self._open_upstream()
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer, answer=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


@asynccontextmanager
async def fault_proxy(
    upstream_unix: str | None = None, upstream_tcp: tuple[str, int] | None = None
) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(upstream_unix, upstream_tcp)
    server = await asyncio.start_server(proxy._handle, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        proxy.set_mode(RESET)
        server.close()
        for task in list(proxy._tasks):
            task.cancel()


@asynccontextmanager
async def database_proxy(database_url: str) -> AsyncIterator[tuple[FaultProxy, str]]:
    """A proxy in front of the test session's PostgreSQL (pgserver's unix socket) and the URL
    of the same database through it."""
    url = urlparse(database_url)
    socket = f"{parse_qs(url.query)['host'][0]}/.s.PGSQL.5432"
    async with fault_proxy(upstream_unix=socket) as proxy:
        yield proxy, f"postgresql://postgres:@127.0.0.1:{proxy.port}{url.path}"
