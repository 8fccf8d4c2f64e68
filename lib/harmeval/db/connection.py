"""Where the database is, opening the pool, and applying migrations at start-up."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from psycopg import AsyncCursor, sql
from psycopg_pool import AsyncConnectionPool

from harmeval.settings import CommonSettings

logger = logging.getLogger(__name__)


def embedded_pgdata(data_dir: Path) -> Path:
    return (data_dir / "postgres").resolve()


def start_embedded_postgres(data_dir: Path) -> str:
    """Starts (or joins) the private PostgreSQL under data_dir and returns its URL.

    The server outlives this process (cleanup_mode=None) so the three services and the CLI
    share one; `harmeval down` stops it.
    """
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on import; irrelevant to a data-dir server.
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: only the embedded default needs it

    pgdata = embedded_pgdata(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return str(server.get_uri())


def stop_embedded_postgres(data_dir: Path, timeout_s: float = 30.0) -> bool:
    """Stops the private PostgreSQL if it runs; returns whether it was running.

    SIGINT is PostgreSQL's "fast shutdown" (what `pg_ctl stop -m fast` sends). Signalling the
    postmaster directly works whichever system user pgserver runs it as.
    """
    pid_file = embedded_pgdata(data_dir) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGINT)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL (pid {pid}) did not stop within {timeout_s:.0f}s")


def resolve_database_url(settings: CommonSettings) -> str:
    return settings.database_url or start_embedded_postgres(settings.data_dir)


@dataclass(frozen=True)
class Schema:
    """A service's own tables: a PostgreSQL schema of that name, created and changed only by
    the SQL files of `migrations_package` (`NNNN_name.sql`, applied in name order)."""

    name: str
    migrations_package: str
    # The tables it owns (its migrations create them); other services never touch them.
    tables: tuple[str, ...]

    @property
    def lock_id(self) -> int:
        # One advisory lock per owner: its concurrent start-ups apply its migrations once,
        # and owners never wait for each other.
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:4], "big")


def migration_files(schema: Schema) -> list[tuple[str, str]]:
    """(version, sql) in order; the version is the file name without `.sql`."""
    folder = resources.files(schema.migrations_package)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def migrate(pool: AsyncConnectionPool, schema: Schema) -> list[str]:
    """Applies `schema`'s migrations not applied yet, all in one transaction (each file a
    savepoint of it) under the owner's advisory lock; returns their versions. Migrations
    create and change only the owner's schema (the one-time adoption of a database from
    before the split also moves the owner's old tables out of `public`)."""
    applied: list[str] = []
    name = sql.Identifier(schema.name)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema.lock_id,))
        cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema.name,))
        if await cur.fetchone() is None:
            # Only when missing: CREATE SCHEMA needs the right to create in the database even
            # with IF NOT EXISTS, and a least-privilege role gets its schema made for it.
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(name))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(name)
        )
        cur = await conn.execute(sql.SQL("SELECT version FROM {}.schema_migrations").format(name))
        done = {row[0] for row in await cur.fetchall()}
        for version, text in migration_files(schema):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(text.encode())
                await conn.execute(
                    sql.SQL("INSERT INTO {}.schema_migrations (version) VALUES (%s)").format(name),
                    (version,),
                )
            applied.append(version)
    if applied:
        logger.info("applied %s migrations %s", schema.name, ", ".join(applied))
    return applied


@asynccontextmanager
async def open_database(
    settings: CommonSettings, schema: Schema
) -> AsyncIterator[AsyncConnectionPool]:
    """Opens the pool, brings `schema` up to date, and closes the pool on exit."""
    url = resolve_database_url(settings)
    pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=settings.db_pool_max_size,
        open=False,
        # A connection that cannot be had within this is PoolTimeout: UNAVAILABLE to the caller.
        timeout=settings.db_acquire_timeout_s,
        kwargs={"autocommit": True, "connect_timeout": 5},
    )
    await pool.open(wait=True, timeout=30)
    try:
        await migrate(pool, schema)
        yield pool
    finally:
        await pool.close()


class PublishedViewMissing(RuntimeError):
    """Another service's published view does not exist yet: that service has never started
    against this database."""


async def missing_views(pool: AsyncConnectionPool, views: Sequence[str]) -> list[str]:
    """Which of the `schema.view` names do not exist (yet)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT v FROM unnest(%s::text[]) AS v WHERE to_regclass(v) IS NULL", (list(views),)
        )
        return [str(r[0]) for r in await cur.fetchall()]


async def count_rows(pool: AsyncConnectionPool, schema: Schema, table: str) -> int:
    """Rows of one of `schema`'s tables (tests show that nothing was stored twice)."""
    if table not in schema.tables:
        raise ValueError(f"{table!r} is not a table of schema {schema.name!r}")
    async with pool.connection() as conn:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema.name), sql.Identifier(table)
        )
        cur = await conn.execute(query)
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def returned_ids(cur: AsyncCursor[Any]) -> list[int]:
    """The id each statement of an `executemany(..., returning=True)` returned, in order."""
    ids = []
    while True:
        row = await cur.fetchone()
        assert row is not None
        ids.append(int(row[0]))
        if not cur.nextset():
            return ids
