"""The durable job queue: pgqueuer, with its tables in the runner's schema.

pgqueuer rather than a home-made queue: workers claim jobs with `FOR UPDATE SKIP LOCKED`, a job
whose worker stops sending heartbeats is picked again (a replica killed mid-chunk loses
nothing), and per-entrypoint concurrency limits hold for the whole fleet (seats enforced by a
unique index), which is what a provider's per-account rate limit needs. Chosen over
procrastinate for that fleet-wide limit and for batch enqueue on our own psycopg connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
from pgqueuer.adapters.persistence.qb import (
    QueryBuilderEnvironment,
    QueryQueueBuilder,
    QuerySchedulerBuilder,
)
from pgqueuer.adapters.persistence.queries import Queries
from pgqueuer.domain.settings import DBSettings
from pgqueuer.domain.types import Channel, JobId
from pgqueuer.ports.driver import NotifyCallback
from psycopg import AsyncConnection, sql

from harmeval_runner.store import SCHEMA

logger = logging.getLogger(__name__)

QUEUE_SETTINGS = DBSettings(db_schema=SCHEMA.name, channel=Channel("harmeval_runner_jobs"))
# The install/upgrade of the queue's tables runs once at a time across replicas.
INSTALL_LOCK = "harmeval.runner.queue"

GENERATE_ENTRYPOINT = "generate"
JUDGE_ENTRYPOINT = "judge"


def judge_entrypoint(judge: str, limited: set[str]) -> str:
    """A judge with a fleet-wide cap has an entrypoint of its own, so the cap is its limit."""
    return f"judge:{judge}" if judge in limited else JUDGE_ENTRYPOINT


class ListeningDriver(PsycopgDriver):
    """pgqueuer's psycopg driver, LISTENing on a connection of its own: its driver waits for
    notifications holding the connection's lock (up to a second at a time), which held every
    dequeue, heartbeat and status write of the worker back behind it (bench/runner_scale_out.py:
    first jobs picked 2 s after StartRun instead of 10 ms)."""

    def __init__(self, conn: AsyncConnection[Any], listen: AsyncConnection[Any]) -> None:
        super().__init__(conn)
        self._listen = listen

    async def add_listener(self, channel: str, callback: NotifyCallback) -> None:
        if channel not in self._listeners:
            await self._listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._listeners[channel] = []
        self._listeners[channel].append(callback)
        if self._watcher is None:
            self._watcher = asyncio.create_task(self.watch_notifies(), name="notify_watcher")
            self._tm.add(self._watcher)

    async def watch_notifies(self) -> None:
        while not self.shutdown.is_set():
            async for note in self._listen.notifies(timeout=1.0, stop_after=1):
                for callback in list(self._listeners.get(note.channel, [])):
                    try:
                        callback(note.payload)
                    except Exception:
                        logger.exception("NOTIFY callback failed (channel %s)", note.channel)


def queries(conn: AsyncConnection[Any], listen: AsyncConnection[Any] | None = None) -> Queries:
    return Queries(
        PsycopgDriver(conn) if listen is None else ListeningDriver(conn, listen),
        qbe=QueryBuilderEnvironment(settings=QUEUE_SETTINGS),
        qbq=QueryQueueBuilder(settings=QUEUE_SETTINGS),
        qbs=QuerySchedulerBuilder(settings=QUEUE_SETTINGS),
    )


async def install(conn: AsyncConnection[Any]) -> None:
    """Creates pgqueuer's tables in the runner's schema, or brings them to this version."""
    await conn.execute(
        "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (INSTALL_LOCK,), prepare=False
    )
    try:
        q = queries(conn)
        if await q.schema_is_installed():
            await q.upgrade()
        else:
            await q.install(create_schema=False)
    finally:
        await conn.execute(
            "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (INSTALL_LOCK,), prepare=False
        )


@dataclass(frozen=True)
class GenerateJob:
    """Answers of every small model for the run's prompts [first, first + count)."""

    run: str
    attempt: int
    first: int
    count: int


@dataclass(frozen=True)
class JudgeJob:
    """One judge's verdicts on the answers to the prompts [first, first + count):
    `answers[i]` lists (generation id, text) of prompt first + i."""

    run: str
    attempt: int
    first: int
    count: int
    judge: str
    answers: list[list[tuple[int, str]]]


@dataclass(frozen=True)
class QueuedJob:
    entrypoint: str
    payload: GenerateJob | JudgeJob

    @property
    def dedupe_key(self) -> str:
        # The same chunk queued twice (a generate job done again after a crash) is one job.
        p = self.payload
        subject = p.judge if isinstance(p, JudgeJob) else ""
        return f"{p.run}/{p.attempt}/{self.entrypoint}/{subject}/{p.first}"


async def enqueue(conn: AsyncConnection[Any], jobs: list[QueuedJob]) -> None:
    """Queues `jobs` on `conn`, inside whatever transaction it is in."""
    if not jobs:
        return
    await queries(conn).enqueue(
        [j.entrypoint for j in jobs],
        [json.dumps(asdict(j.payload)).encode() for j in jobs],
        [0] * len(jobs),
        dedupe_key=[j.dedupe_key for j in jobs],
        # What CancelRun and the repair of a run look jobs up by.
        headers=[
            {
                "run": j.payload.run,
                "attempt": str(j.payload.attempt),
                "first": str(j.payload.first),
            }
            for j in jobs
        ],
        on_conflict="skip",
    )


def generate_job(payload: bytes) -> GenerateJob:
    return GenerateJob(**json.loads(payload))


def judge_job(payload: bytes) -> JudgeJob:
    raw = json.loads(payload)
    raw["answers"] = [[(int(g), str(t)) for g, t in prompt] for prompt in raw["answers"]]
    return JudgeJob(**raw)


async def run_jobs(conn: AsyncConnection[Any], run_id: uuid.UUID, attempt: int) -> list[JobId]:
    """The attempt's jobs still queued or being worked on."""
    cur = await conn.execute(
        f"SELECT id FROM {QUEUE_SETTINGS.qualified.queue_table}"
        " WHERE headers->>'run' = %s AND headers->>'attempt' = %s",
        (str(run_id), str(attempt)),
    )
    return [JobId(r[0]) for r in await cur.fetchall()]


async def chunks_without_jobs(
    conn: AsyncConnection[Any], run_id: uuid.UUID, attempt: int, firsts: list[int]
) -> list[int]:
    """Which of the chunks (by first prompt) have no job queued or being worked on."""
    cur = await conn.execute(
        f"SELECT f FROM unnest(%s::int[]) AS f WHERE NOT EXISTS ("
        f" SELECT 1 FROM {QUEUE_SETTINGS.qualified.queue_table} q"
        " WHERE q.headers->>'run' = %s AND q.headers->>'attempt' = %s"
        " AND q.headers->>'first' = f::text AND q.status::text IN ('queued', 'picked'))",
        (firsts, str(run_id), str(attempt)),
    )
    return [int(r[0]) for r in await cur.fetchall()]


async def queue_depth(conn: AsyncConnection[Any]) -> dict[str, int]:
    """Jobs ready to be picked (not waiting for a retry's delay), per entrypoint."""
    cur = await conn.execute(
        f"SELECT entrypoint, count(*) FROM {QUEUE_SETTINGS.qualified.queue_table}"
        " WHERE status = 'queued' AND execute_after <= now() GROUP BY entrypoint"
    )
    return {str(r[0]): int(r[1]) for r in await cur.fetchall()}


async def held_jobs(conn: AsyncConnection[Any]) -> int:
    """Jobs that failed in a way the worker did not expect (kept for a person to look at)."""
    cur = await conn.execute(
        f"SELECT count(*) FROM {QUEUE_SETTINGS.qualified.queue_table} WHERE status = 'failed'"
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
