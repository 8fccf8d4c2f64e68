"""The runner service's tables (schema `runner`): runs, their prompts and chunk results.

Every change of a run and the jobs it queues commit together (pgqueuer enqueues on the same
connection, in the same transaction), so a crash never leaves a run without its work or work
without its run.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from harmeval.db import Schema, count_rows

SCHEMA = Schema(
    name="runner",
    migrations_package="harmeval_runner.migrations",
    tables=("runs", "run_prompts", "chunk_results"),
)

RUNNING, SUCCEEDED, FAILED, CANCELLED = "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
GENERATE, JUDGE = "generate", "judge"
# How many recent errors a run keeps to show.
KEPT_ERRORS = 10

# Queues jobs on the connection of the transaction it is given.
Enqueue = Callable[[AsyncConnection[Any]], Awaitable[None]]


@dataclass(frozen=True)
class RunModel:
    name: str
    model: str
    params: dict[str, Any]


@dataclass(frozen=True)
class PromptRow:
    prompt_id: int
    external_id: str
    text: str
    category: str


@dataclass(frozen=True, kw_only=True)
class RunRow:
    id: uuid.UUID
    study: str
    state: str
    attempt: int
    models: list[dict[str, Any]]
    judges: list[str]
    rejudge_unscorable: bool
    n_prompts: int
    chunk_size: int
    error: str
    last_errors: list[str]
    created_at: datetime
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None

    @property
    def n_chunks(self) -> int:
        return -(-self.n_prompts // self.chunk_size)

    @property
    def expected_results(self) -> int:
        """Chunk results that finish an attempt: one per chunk and small model or judge."""
        return self.n_chunks * (len(self.models) + len(self.judges))

    def run_models(self) -> list[RunModel]:
        return [RunModel(m["name"], m["model"], m["params"]) for m in self.models]


@dataclass(kw_only=True)
class Tally:
    """Items of one stage for one small model or judge: a chunk's, or a run's so far."""

    stage: str
    subject: str
    done: int = 0
    cached: int = 0
    unscorable: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(kw_only=True)
class ChunkResult(Tally):
    # The chunk's first prompt (its position in the run).
    first: int


@dataclass(frozen=True, kw_only=True)
class StartedRun:
    run: RunRow
    # False when the study's run was already running: nothing was changed or queued.
    started: bool = True


_RUN_COLUMNS = (
    "id, study, state, attempt, models, judges, rejudge_unscorable, n_prompts, chunk_size,"
    " error, last_errors, created_at, started_at, updated_at, ended_at"
)


async def _run_for_update(conn: AsyncConnection[Any], run_id: uuid.UUID) -> RunRow | None:
    cur = conn.cursor(row_factory=class_row(RunRow))
    await cur.execute(f"SELECT {_RUN_COLUMNS} FROM runner.runs WHERE id = %s FOR UPDATE", (run_id,))
    return await cur.fetchone()


class RunnerStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def running_for(self, study: str) -> RunRow | None:
        """The study's run if it is running now."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(RunRow))
            await cur.execute(
                f"SELECT {_RUN_COLUMNS} FROM runner.runs WHERE study = %s AND state = %s",
                (study, RUNNING),
            )
            return await cur.fetchone()

    async def start(
        self,
        study: str,
        models: Sequence[RunModel],
        judges: Sequence[str],
        prompts: Sequence[PromptRow],
        *,
        rejudge_unscorable: bool,
        chunk_size: int,
        enqueue: Callable[[AsyncConnection[Any], RunRow], Awaitable[None]],
    ) -> StartedRun:
        """Starts the study's run, or its next attempt once the last one is done, and queues its
        first jobs in the same transaction; a run already running is returned as it is."""
        async with self.pool.connection() as conn, conn.transaction():
            # Two StartRun calls for one study: the second waits here and finds the run.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('harmeval.runner:' || %s, 0))",
                (study,),
            )
            cur = await conn.execute(
                "SELECT id, state FROM runner.runs WHERE study = %s FOR UPDATE", (study,)
            )
            existing = await cur.fetchone()
            values = (
                Jsonb([{"name": m.name, "model": m.model, "params": m.params} for m in models]),
                Jsonb(list(judges)),
                rejudge_unscorable,
                len(prompts),
                chunk_size,
            )
            if existing is not None and existing[1] == RUNNING:
                run = await _run_for_update(conn, existing[0])
                assert run is not None
                return StartedRun(run=run, started=False)
            if existing is None:
                run_id = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO runner.runs (id, study, state, models, judges,"
                    " rejudge_unscorable, n_prompts, chunk_size)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (run_id, study, RUNNING, *values),
                )
            else:
                run_id = existing[0]
                await conn.execute(
                    "UPDATE runner.runs SET state = %s, attempt = attempt + 1, models = %s,"
                    " judges = %s, rejudge_unscorable = %s, n_prompts = %s, chunk_size = %s,"
                    " error = '', last_errors = '[]', started_at = now(), updated_at = now(),"
                    " ended_at = NULL WHERE id = %s",
                    (RUNNING, *values, run_id),
                )
                await conn.execute("DELETE FROM runner.run_prompts WHERE run_id = %s", (run_id,))
            async with conn.cursor() as c:
                await c.executemany(
                    "INSERT INTO runner.run_prompts"
                    " (run_id, position, prompt_id, external_id, text, category)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (run_id, i, p.prompt_id, p.external_id, p.text, p.category)
                        for i, p in enumerate(prompts)
                    ],
                )
            run = await _run_for_update(conn, run_id)
            assert run is not None
            await enqueue(conn, run)
            return StartedRun(run=run)

    async def get(self, run_id: uuid.UUID) -> RunRow | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(RunRow))
            await cur.execute(f"SELECT {_RUN_COLUMNS} FROM runner.runs WHERE id = %s", (run_id,))
            return await cur.fetchone()

    async def page(self, offset: int, limit: int, study: str = "") -> list[RunRow]:
        """Runs newest first (of one study when `study` is given)."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(RunRow))
            await cur.execute(
                f"SELECT {_RUN_COLUMNS} FROM runner.runs WHERE %s = '' OR study = %s"
                " ORDER BY created_at DESC, id OFFSET %s LIMIT %s",
                (study, study, offset, limit),
            )
            return await cur.fetchall()

    async def totals(self, run: RunRow) -> list[Tally]:
        """Finished items of the run's current attempt per stage and model or judge."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT stage, subject, sum(done), sum(cached), sum(unscorable), sum(failed),"
                " sum(prompt_tokens), sum(completion_tokens), sum(cost_usd)"
                " FROM runner.chunk_results WHERE run_id = %s AND attempt = %s"
                " GROUP BY stage, subject",
                (run.id, run.attempt),
            )
            return [
                Tally(
                    stage=r[0],
                    subject=r[1],
                    done=int(r[2]),
                    cached=int(r[3]),
                    unscorable=int(r[4]),
                    failed=int(r[5]),
                    prompt_tokens=int(r[6]),
                    completion_tokens=int(r[7]),
                    cost_usd=float(r[8]),
                )
                for r in await cur.fetchall()
            ]

    async def cancel(
        self,
        run_id: uuid.UUID,
        reason: str,
        on_cancel: Callable[[AsyncConnection[Any], RunRow], Awaitable[None]],
    ) -> tuple[str, RunRow] | None:
        """Cancels a running run and, in the same transaction (holding the run, so no attempt
        starts or ends meanwhile), `on_cancel` drops its jobs. Returns the state it had and the
        run as it is now; None for no such run."""
        async with self.pool.connection() as conn, conn.transaction():
            before = await _run_for_update(conn, run_id)
            if before is None or before.state != RUNNING:
                return (before.state, before) if before else None
            await conn.execute(
                "UPDATE runner.runs SET state = %s, error = %s, updated_at = now(),"
                " ended_at = now() WHERE id = %s",
                (CANCELLED, reason, run_id),
            )
            after = await _run_for_update(conn, run_id)
            assert after is not None
            await on_cancel(conn, after)
            return before.state, after

    async def unfinished_chunks(self, run: RunRow) -> list[int]:
        """First prompts of the attempt's chunks that lack a result of some model or judge."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT f FROM generate_series(0, %s - 1, %s) AS f WHERE (SELECT count(*)"
                " FROM runner.chunk_results r WHERE r.run_id = %s AND r.attempt = %s"
                " AND r.first = f) < %s",
                (
                    run.n_prompts,
                    run.chunk_size,
                    run.id,
                    run.attempt,
                    len(run.models) + len(run.judges),
                ),
            )
            return [int(r[0]) for r in await cur.fetchall()]

    async def running(self) -> list[RunRow]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(RunRow))
            await cur.execute(
                f"SELECT {_RUN_COLUMNS} FROM runner.runs WHERE state = %s", (RUNNING,)
            )
            return await cur.fetchall()

    async def prompts(self, run_id: uuid.UUID, first: int, count: int) -> list[PromptRow]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(PromptRow))
            await cur.execute(
                "SELECT prompt_id, external_id, text, category FROM runner.run_prompts"
                " WHERE run_id = %s AND position >= %s AND position < %s ORDER BY position",
                (run_id, first, first + count),
            )
            return await cur.fetchall()

    async def record(
        self,
        run_id: uuid.UUID,
        attempt: int,
        results: Sequence[ChunkResult],
        enqueue: Enqueue | None = None,
        errors: Sequence[str] = (),
        placeholders: Sequence[ChunkResult] = (),
    ) -> bool:
        """Stores a finished chunk's results (and queues its follow-up jobs) in one transaction,
        and ends the attempt when it was its last chunk. False when the chunk belongs to an
        attempt that is over (cancelled, or started again): nothing is stored then.

        A chunk delivered twice keeps the best either delivery got (most done, fewest failed,
        the first delivery's new items and tokens). `placeholders` are stored only where the
        chunk has no result yet (the judge results of a chunk whose answers failed)."""
        async with self.pool.connection() as conn, conn.transaction():
            run = await _run_for_update(conn, run_id)
            if run is None or run.state != RUNNING or run.attempt != attempt:
                return False
            async with conn.cursor() as c:
                await c.executemany(
                    "INSERT INTO runner.chunk_results AS r (run_id, attempt, stage, subject, first,"
                    " done, cached, unscorable, failed, prompt_tokens, completion_tokens,"
                    " cost_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (run_id, attempt, stage, subject, first) DO UPDATE SET"
                    " done = GREATEST(r.done, EXCLUDED.done),"
                    " cached = LEAST(r.cached, EXCLUDED.cached),"
                    " unscorable = GREATEST(r.unscorable, EXCLUDED.unscorable),"
                    " failed = LEAST(r.failed, EXCLUDED.failed),"
                    " prompt_tokens = GREATEST(r.prompt_tokens, EXCLUDED.prompt_tokens),"
                    " completion_tokens = GREATEST(r.completion_tokens,"
                    " EXCLUDED.completion_tokens),"
                    " cost_usd = GREATEST(r.cost_usd, EXCLUDED.cost_usd), finished_at = now()",
                    [
                        (
                            run_id,
                            attempt,
                            r.stage,
                            r.subject,
                            r.first,
                            r.done,
                            r.cached,
                            r.unscorable,
                            r.failed,
                            r.prompt_tokens,
                            r.completion_tokens,
                            r.cost_usd,
                        )
                        for r in results
                    ],
                )
                if placeholders:
                    await c.executemany(
                        "INSERT INTO runner.chunk_results (run_id, attempt, stage, subject, first)"
                        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [(run_id, attempt, r.stage, r.subject, r.first) for r in placeholders],
                    )
            if enqueue is not None:
                await enqueue(conn)
            if errors:
                await _append_errors(conn, run_id, errors)
            cur = await conn.execute(
                "SELECT count(*), coalesce(sum(failed), 0) FROM runner.chunk_results"
                " WHERE run_id = %s AND attempt = %s",
                (run_id, attempt),
            )
            row = await cur.fetchone()
            assert row is not None
            finished, failed = int(row[0]), int(row[1])
            if finished >= run.expected_results:
                state = FAILED if failed else SUCCEEDED
                error = (
                    f"{failed} items failed (see the last errors); start the run again to "
                    "retry them"
                    if failed
                    else ""
                )
                await conn.execute(
                    "UPDATE runner.runs SET state = %s, error = %s, updated_at = now(),"
                    " ended_at = now() WHERE id = %s",
                    (state, error, run_id),
                )
            else:
                await conn.execute(
                    "UPDATE runner.runs SET updated_at = now() WHERE id = %s", (run_id,)
                )
            return True

    async def note_errors(self, run_id: uuid.UUID, errors: Sequence[str]) -> None:
        """Keeps errors worth showing (a retried call, a failed item) with the run."""
        async with self.pool.connection() as conn:
            await _append_errors(conn, run_id, errors)

    async def count_rows(self, table: str) -> int:
        return await count_rows(self.pool, SCHEMA, table)


async def _append_errors(
    conn: AsyncConnection[Any], run_id: uuid.UUID, errors: Sequence[str]
) -> None:
    await conn.execute(
        "UPDATE runner.runs SET last_errors = (SELECT coalesce(jsonb_agg(e ORDER BY n), '[]')"
        " FROM (SELECT e, n FROM jsonb_array_elements(last_errors || %s) WITH ORDINALITY"
        " AS t(e, n) ORDER BY n DESC LIMIT %s) kept) WHERE id = %s",
        (Jsonb([e[:500] for e in errors]), KEPT_ERRORS, run_id),
    )
