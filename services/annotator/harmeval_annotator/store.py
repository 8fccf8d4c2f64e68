"""The annotation app's tables (schema `annotator`): queues, their prompts and guidelines,
what each person did with each prompt, and sign-in sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from harmeval.db import Schema, count_rows

SCHEMA = Schema(
    name="annotator",
    migrations_package="harmeval_annotator.migrations",
    tables=("queues", "guidelines", "units", "assignments", "sessions"),
)

LABELLED, SKIPPED, FLAGGED = "labelled", "skipped", "flagged"


class QueueHasLabels(Exception):
    """A queue whose prompts people have worked on cannot be drawn again."""


@dataclass(frozen=True, kw_only=True)
class Queue:
    study: str
    design: str
    scale: str
    overlap: int
    budget: int
    seed: int
    # Stop offering prompts once every model's harm rate is known to ± this (None: no rule),
    # helped by this judge's labels ("" = people's labels alone).
    stop_half_width: float | None = None
    stop_judge: str = ""
    units: int = 0
    complete: int = 0  # units with `overlap` labels


@dataclass(frozen=True, kw_only=True)
class Unit:
    prompt_id: int
    prompt_key: str
    position: int
    inclusion_probability: float


@dataclass(frozen=True, kw_only=True)
class Session:
    annotator: str
    role: str
    started_at: datetime
    warned_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class Progress:
    annotator: str
    labelled: int
    skipped: int
    flagged: int


@dataclass(frozen=True, kw_only=True)
class Flag:
    prompt_id: int
    prompt_key: str
    annotator: str
    note: str


@dataclass(frozen=True, kw_only=True)
class Outcome:
    study: str
    prompt_id: int
    annotator: str
    outcome: str
    order_seed: int
    shown_order: list[str]
    labels: dict[str, int] | None
    guideline_version: int
    inclusion_probability: float
    note: str = ""
    seconds: float | None = None


_QUEUE_COLUMNS = (
    "q.study, q.design, q.scale, q.overlap, q.budget, q.seed, q.stop_half_width, q.stop_judge,"
    " (SELECT count(*) FROM annotator.units u WHERE u.study = q.study)::int AS units,"
    " (SELECT count(*) FROM annotator.units u WHERE u.study = q.study AND"
    "   (SELECT count(*) FROM annotator.assignments a WHERE a.study = u.study"
    "    AND a.prompt_id = u.prompt_id AND a.outcome = 'labelled') >= q.overlap)::int"
    " AS complete"
)


class AnnotationStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def open_queue(
        self, queue: Queue, units: Sequence[Unit], guidelines: str, *, new_stop: bool = True
    ) -> int:
        """Creates the study's queue, or draws it again while nobody has worked on it; new
        guidelines text becomes the next version. With `new_stop` the queue's stopping rule
        becomes `queue`'s: set or changed only before the first label (a rule chosen after
        seeing labels would pick among sequences after the fact), removed any time; without,
        a reopened queue keeps its rule. Returns the guidelines' current version."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('annotator.queue'), hashtext(%s))",
                (queue.study,),
            )
            cur = await conn.execute(
                "SELECT design, scale, overlap, budget, seed, stop_half_width, stop_judge"
                " FROM annotator.queues WHERE study = %s",
                (queue.study,),
            )
            found = await cur.fetchone()
            row = None if found is None else tuple(found[:5])
            old_rule = (None, "") if found is None else (found[5], str(found[6]))
            same = row is not None and row == (
                queue.design,
                queue.scale,
                queue.overlap,
                queue.budget,
                queue.seed,
            )
            if row is not None and not same:
                cur = await conn.execute(
                    "SELECT count(*) FROM annotator.assignments WHERE study = %s",
                    (queue.study,),
                )
                done = await cur.fetchone()
                if done is not None and done[0]:
                    raise QueueHasLabels(
                        f"the queue of {queue.study!r} has {done[0]} labels, skips or flags; "
                        "its prompts cannot be drawn again"
                    )
                await conn.execute("DELETE FROM annotator.units WHERE study = %s", (queue.study,))
            if not same:
                await conn.execute(
                    "INSERT INTO annotator.queues (study, design, scale, overlap, budget, seed)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (study) DO UPDATE SET"
                    " design = EXCLUDED.design, scale = EXCLUDED.scale,"
                    " overlap = EXCLUDED.overlap, budget = EXCLUDED.budget,"
                    " seed = EXCLUDED.seed",
                    (
                        queue.study,
                        queue.design,
                        queue.scale,
                        queue.overlap,
                        queue.budget,
                        queue.seed,
                    ),
                )
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO annotator.units (study, prompt_id, prompt_key, position,"
                        " inclusion_probability) VALUES (%s, %s, %s, %s, %s)",
                        [
                            (
                                queue.study,
                                u.prompt_id,
                                u.prompt_key,
                                u.position,
                                u.inclusion_probability,
                            )
                            for u in units
                        ],
                    )
            rule = (queue.stop_half_width, queue.stop_judge)
            if new_stop and rule != old_rule:
                if queue.stop_half_width is not None and row is not None:
                    cur = await conn.execute(
                        "SELECT count(*) FROM annotator.assignments WHERE study = %s"
                        " AND outcome = 'labelled'",
                        (queue.study,),
                    )
                    done = await cur.fetchone()
                    if done is not None and done[0]:
                        width, judge = old_rule
                        now = "none" if width is None else f"±{width:g}, judge {judge or 'none'}"
                        raise QueueHasLabels(
                            f"the queue of {queue.study!r} has {done[0]} labels: its stopping "
                            f"rule ({now}) is fixed once people labelled; it can only be removed"
                        )
                await conn.execute(
                    "UPDATE annotator.queues SET stop_half_width = %s, stop_judge = %s"
                    " WHERE study = %s",
                    (queue.stop_half_width, queue.stop_judge, queue.study),
                )
            cur = await conn.execute(
                "SELECT version, text FROM annotator.guidelines WHERE study = %s"
                " ORDER BY version DESC LIMIT 1",
                (queue.study,),
            )
            latest = await cur.fetchone()
            if latest is not None and latest[1] == guidelines:
                return int(latest[0])
            version = 1 if latest is None else int(latest[0]) + 1
            await conn.execute(
                "INSERT INTO annotator.guidelines (study, version, text) VALUES (%s, %s, %s)",
                (queue.study, version, guidelines),
            )
            return version

    async def queues(self) -> list[Queue]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Queue))
            await cur.execute(f"SELECT {_QUEUE_COLUMNS} FROM annotator.queues q ORDER BY study")
            return await cur.fetchall()

    async def queue(self, study: str) -> Queue | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Queue))
            await cur.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM annotator.queues q WHERE q.study = %s", (study,)
            )
            return await cur.fetchone()

    async def guidelines(self, study: str) -> tuple[int, str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT version, text FROM annotator.guidelines WHERE study = %s"
                " ORDER BY version DESC LIMIT 1",
                (study,),
            )
            row = await cur.fetchone()
            return (0, "") if row is None else (int(row[0]), str(row[1]))

    async def next_unit(self, study: str, annotator: str, overlap: int) -> Unit | None:
        """The next prompt for `annotator`: one they have not seen that fewer than `overlap`
        people labelled, those others started first (so units reach their overlap), then in
        study order."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Unit))
            await cur.execute(
                "SELECT u.prompt_id, u.prompt_key, u.position, u.inclusion_probability"
                " FROM annotator.units u"
                " LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE a.outcome = 'labelled') AS n,"
                "   bool_or(a.annotator = %s) AS mine FROM annotator.assignments a"
                "   WHERE a.study = u.study AND a.prompt_id = u.prompt_id) s ON true"
                " WHERE u.study = %s AND NOT coalesce(s.mine, false) AND s.n < %s"
                " ORDER BY s.n DESC, u.position LIMIT 1",
                (annotator, study, overlap),
            )
            return await cur.fetchone()

    async def unit(self, study: str, prompt_id: int) -> Unit | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Unit))
            await cur.execute(
                "SELECT prompt_id, prompt_key, position, inclusion_probability"
                " FROM annotator.units WHERE study = %s AND prompt_id = %s",
                (study, prompt_id),
            )
            return await cur.fetchone()

    async def record(self, o: Outcome) -> None:
        """What a person did with a prompt; the same submission again replaces it."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO annotator.assignments (study, prompt_id, annotator, outcome,"
                " order_seed, shown_order, labels, guideline_version, inclusion_probability,"
                " note, seconds, labelled_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " CASE WHEN %s = 'labelled' THEN now() END)"
                " ON CONFLICT (study, prompt_id, annotator) DO UPDATE SET"
                " outcome = EXCLUDED.outcome, order_seed = EXCLUDED.order_seed,"
                " shown_order = EXCLUDED.shown_order, labels = EXCLUDED.labels,"
                " guideline_version = EXCLUDED.guideline_version,"
                " inclusion_probability = EXCLUDED.inclusion_probability,"
                " note = EXCLUDED.note, seconds = EXCLUDED.seconds, created_at = now(),"
                # The first labelling stays first: the stopping rule's order never changes.
                " labelled_at = coalesce(annotator.assignments.labelled_at, EXCLUDED.labelled_at)",
                (
                    o.study,
                    o.prompt_id,
                    o.annotator,
                    o.outcome,
                    o.order_seed,
                    Jsonb(o.shown_order),
                    None if o.labels is None else Jsonb(o.labels),
                    o.guideline_version,
                    o.inclusion_probability,
                    o.note,
                    o.seconds,
                    o.outcome,
                ),
            )

    async def labelled_by(self, study: str, prompt_id: int, annotator: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM annotator.assignments WHERE study = %s AND prompt_id = %s"
                " AND annotator = %s AND outcome = 'labelled'",
                (study, prompt_id, annotator),
            )
            return await cur.fetchone() is not None

    async def progress(self, study: str) -> list[Progress]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Progress))
            await cur.execute(
                "SELECT annotator,"
                " count(*) FILTER (WHERE outcome = 'labelled')::int AS labelled,"
                " count(*) FILTER (WHERE outcome = 'skipped')::int AS skipped,"
                " count(*) FILTER (WHERE outcome = 'flagged')::int AS flagged"
                " FROM annotator.assignments WHERE study = %s GROUP BY annotator"
                " ORDER BY annotator",
                (study,),
            )
            return await cur.fetchall()

    async def flagged(self, study: str) -> list[Flag]:
        """The prompts people flagged, with why, in queue order."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Flag))
            await cur.execute(
                "SELECT a.prompt_id, u.prompt_key, a.annotator, a.note"
                " FROM annotator.assignments a JOIN annotator.units u"
                " ON u.study = a.study AND u.prompt_id = a.prompt_id"
                " WHERE a.study = %s AND a.outcome = 'flagged'"
                " ORDER BY u.position, a.annotator",
                (study,),
            )
            return await cur.fetchall()

    # -- sessions ------------------------------------------------------------------------

    async def start_session(self, digest: str, annotator: str, role: str, hours: float) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO annotator.sessions (id, annotator, role, expires_at)"
                " VALUES (%s, %s, %s, now() + %s)",
                (digest, annotator, role, timedelta(hours=hours)),
            )

    async def session(self, digest: str) -> Session | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Session))
            await cur.execute(
                "SELECT annotator, role, started_at, warned_at FROM annotator.sessions"
                " WHERE id = %s AND expires_at > now()",
                (digest,),
            )
            return await cur.fetchone()

    async def warned(self, digest: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE annotator.sessions SET warned_at = now() WHERE id = %s", (digest,)
            )

    async def end_session(self, digest: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM annotator.sessions WHERE id = %s OR expires_at < now()", (digest,)
            )

    async def count_rows(self, table: str) -> int:
        return await count_rows(self.pool, SCHEMA, table)
