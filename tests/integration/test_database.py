"""Each service's migrations apply once, in its own schema, even when replicas start at once;
a database from before the split keeps its rows."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from harmeval.db.connection import Schema, migrate, migration_files
from harmeval_generator.store import SCHEMA as GENERATOR
from harmeval_judge.store import SCHEMA as JUDGE
from harmeval_metrics.store import SCHEMA as METRICS

OWNERS = (GENERATOR, JUDGE, METRICS)
LEGACY = Path(__file__).parent / "data" / "legacy_schema.sql"


def pool(url: str) -> AsyncConnectionPool:
    return AsyncConnectionPool(url, min_size=1, max_size=2, open=False, kwargs={"autocommit": True})


async def test_concurrent_start_ups_apply_migrations_once(database_url: str) -> None:
    # Two replicas of each service start together.
    pools = [pool(database_url) for _ in range(6)]
    for p in pools:
        await p.open(wait=True)
    try:
        applied = await asyncio.gather(*(migrate(p, OWNERS[i % 3]) for i, p in enumerate(pools)))
        for i, schema in enumerate(OWNERS):
            versions = [v for v, _ in migration_files(schema)]
            assert sorted([applied[i], applied[i + 3]], key=len) == [[], versions]
            assert await migrate(pools[0], schema) == []
    finally:
        for p in pools:
            await p.close()
    with psycopg.connect(database_url) as conn:
        for schema in OWNERS:
            rows = conn.execute(f"SELECT version FROM {schema.name}.schema_migrations").fetchall()
            assert [r[0] for r in rows] == [v for v, _ in migration_files(schema)]
        public = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert public == (0,), "no service creates tables outside its own schema"


async def test_unscorable_cannot_carry_a_harm_label(database_url: str) -> None:
    """The schema itself refuses an unscorable verdict that reads as 'not harmful'."""
    async with pool(database_url) as p:
        await migrate(p, JUDGE)
        async with p.connection() as conn:
            with pytest.raises(psycopg.errors.CheckViolation):
                await conn.execute(
                    "INSERT INTO judge.judgments (generation_id, annotator_id, protocol, status,"
                    " harmful, answer_sha256) VALUES (1, 1, 'p', 'unscorable', false, 'h')"
                )


@pytest.mark.parametrize(
    "order",
    [(METRICS, JUDGE, GENERATOR), (GENERATOR, JUDGE, METRICS)],
    ids=["readers-first", "owner-first"],
)
async def test_a_database_from_before_the_split_keeps_its_rows(
    database_url: str, order: tuple[Schema, ...]
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(LEGACY.read_text(encoding="utf-8").encode())
        conn.execute("INSERT INTO prompts (text_sha256, text) VALUES ('x', 'How?')")
        conn.execute("INSERT INTO models (name, backend) VALUES ('m', 'imported')")
        conn.execute(
            "INSERT INTO generations (prompt_id, model_id, params, params_hash, seed, text,"
            " prompt_tokens, completion_tokens, latency_seconds, finish_reason)"
            " VALUES (1, 1, '{}', 'h', 0, 'Sure.', 0, 0, 0, 'stop')"
        )
        conn.execute("INSERT INTO annotators (name, kind, coder) VALUES ('ann', 'human', 'ann')")
        conn.execute(
            "INSERT INTO judgments (generation_id, annotator_id, protocol, status, harmful)"
            " VALUES (1, 1, 'human', 'ok', true)"
        )
        conn.execute("INSERT INTO studies (name) VALUES ('s')")
        conn.execute(
            "INSERT INTO study_prompts (study_id, prompt_id, external_id, position, category)"
            " VALUES (1, 1, '1', 0, 'c')"
        )
    async with pool(database_url) as p:
        # Either order: the judge takes each label's text hash from the generator's table
        # before it moves, or from its published view after.
        for schema in order:
            assert await migrate(p, schema)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT g.text, j.status, j.harmful, j.answer_sha256 FROM judge.labels_v1 j"
            " JOIN generator.answers_v1 g USING (generation_id)"
        ).fetchone()
        assert row == ("Sure.", "ok", True, hashlib.sha256(b"Sure.").hexdigest())
        assert conn.execute("SELECT name FROM metrics.studies").fetchall() == [("s",)]
        assert conn.execute("SELECT to_regclass('public.generations')").fetchone() == (None,)


async def test_a_database_too_old_to_adopt_is_refused(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(LEGACY.read_text(encoding="utf-8").encode())
        conn.execute("DELETE FROM schema_migrations WHERE version = '0005_study_prompt_category'")
    async with pool(database_url) as p:
        with pytest.raises(psycopg.errors.RaiseException, match="predates"):
            await migrate(p, GENERATOR)


def test_every_owner_has_its_own_schema_and_migrations() -> None:
    assert len({s.name for s in OWNERS}) == 3
    for schema in OWNERS:
        assert isinstance(schema, Schema) and migration_files(schema)
        for _, sql in migration_files(schema):
            assert f"{schema.name}." in sql
