"""Migrations apply once, even when three services start against one database at once."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from harmeval.db.connection import migrate, migration_files


async def test_concurrent_start_ups_apply_migrations_once(database_url: str) -> None:
    pools = [
        AsyncConnectionPool(
            database_url, min_size=1, max_size=2, open=False, kwargs={"autocommit": True}
        )
        for _ in range(3)
    ]
    for pool in pools:
        await pool.open(wait=True)
    try:
        applied = await asyncio.gather(*(migrate(pool) for pool in pools))
        versions = [v for v, _ in migration_files()]
        assert sorted(applied, key=len) == [[], [], versions]
        assert await migrate(pools[0]) == []
    finally:
        for pool in pools:
            await pool.close()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        assert [r[0] for r in rows] == versions


async def test_unscorable_cannot_carry_a_harm_label(database_url: str) -> None:
    """The schema itself refuses an unscorable verdict that reads as 'not harmful'."""
    async with AsyncConnectionPool(database_url, open=False, kwargs={"autocommit": True}) as pool:
        await migrate(pool)
        async with pool.connection() as conn:
            with pytest.raises(psycopg.errors.CheckViolation):
                await conn.execute(
                    "INSERT INTO judgments (generation_id, annotator_id, protocol, status, harmful)"
                    " VALUES (1, 1, 'p', 'unscorable', false)"
                )
