"""The metrics service's tables (schema `metrics`): studies and what each compares.

Prompts and answers are read through the generator's published views (`generator.prompts_v1`,
`generator.answers_v1`), labels through the judge service's (`judge.labels_v1`); nothing
here writes another service's table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from harmeval.db import Schema, count_rows, missing_views
from harmeval.params import GenerationParams
from harmeval_metrics.records import PromptIn, StudyAnswer, StudyLabel, StudyModelIn

SCHEMA = Schema(
    name="metrics",
    migrations_package="harmeval_metrics.migrations",
    tables=(
        "studies",
        "study_prompts",
        "study_models",
        "study_judges",
        "study_references",
    ),
)
# What this service reads of the others: their published views, nothing else.
PUBLISHED_VIEWS = ("generator.prompts_v1", "generator.answers_v1", "judge.labels_v1")
# The annotation app's, read when there (a stack may run without the app).
ANNOTATION_VIEWS = ("annotator.queued_v1", "annotator.labelled_v1")


@dataclass(frozen=True, kw_only=True)
class LabellingQueue:
    """A study's annotation queue as the annotation app publishes it."""

    design: str
    stop_half_width: float | None
    stop_judge: str
    # prompt id -> the probability it had of being queued
    queued: dict[int, float]
    # Every queued prompt in the queue's order (the random order people are offered them in),
    # with who labelled it first in the app (None: nobody yet).
    order: list[tuple[int, str | None]]


class StudyBusy(RuntimeError):
    """Another request holds the study's lock for longer than this one may wait."""


# A study's units: (prompt, study model) and the stored answer of each. A label counts only
# when it was given on the answer's current text (a data set imported again may change it).
_UNITS = (
    " FROM metrics.studies s"
    " JOIN metrics.study_prompts sp ON sp.study_id = s.id"
    " JOIN generator.prompts_v1 p ON p.prompt_id = sp.prompt_id"
    " JOIN metrics.study_models sm ON sm.study_id = s.id"
    " JOIN generator.answers_v1 g ON g.prompt_id = sp.prompt_id"
    "  AND g.model_name = sm.model_name AND g.params_hash = sm.params_hash"
)


async def _register_study(
    conn: AsyncConnection[Any],
    name: str,
    prompt_ids: Sequence[int],
    prompts: Sequence[PromptIn],
    models: Sequence[StudyModelIn],
    judges: Sequence[str],
    source: str,
) -> int:
    cur = await conn.execute(
        "INSERT INTO metrics.studies (name, source) VALUES (%s, %s) ON CONFLICT (name)"
        " DO UPDATE SET updated_at = now(), source = EXCLUDED.source RETURNING id",
        (name, source),
    )
    row = await cur.fetchone()
    assert row is not None
    study_id = int(row[0])
    # The study file is the truth: membership is replaced, stored answers are kept.
    for table in ("study_prompts", "study_models", "study_judges", "study_references"):
        await conn.execute(f"DELETE FROM metrics.{table} WHERE study_id = %s", (study_id,))
    async with conn.cursor() as c:
        await c.executemany(
            "INSERT INTO metrics.study_prompts (study_id, prompt_id, external_id, position,"
            " category) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (study_id, pid, p.external_id or str(pid), position, p.category or "uncategorized")
                for position, (pid, p) in enumerate(zip(prompt_ids, prompts, strict=True))
            ],
        )
        await c.executemany(
            "INSERT INTO metrics.study_models (study_id, name, model_name, params, params_hash,"
            " position) VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (
                    study_id,
                    m.name,
                    m.model_name,
                    Jsonb(m.params.as_json()),
                    m.params.cache_key(),
                    position,
                )
                for position, m in enumerate(models)
            ],
        )
        await c.executemany(
            "INSERT INTO metrics.study_judges (study_id, judge_name, position) VALUES (%s, %s, %s)",
            [(study_id, judge, position) for position, judge in enumerate(judges)],
        )
    return study_id


class MetricsStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def register_study(
        self,
        name: str,
        prompt_ids: Sequence[int],
        prompts: Sequence[PromptIn],
        models: Sequence[StudyModelIn],
        judges: Sequence[str],
        *,
        source: str = "run",
        references: Sequence[tuple[int, int]] = (),
    ) -> int:
        """Creates or updates a study in one transaction (prompts already stored by the
        generator, `references` as (prompt id, answer id)); returns its id."""
        async with self.pool.connection() as conn, conn.transaction():
            study_id = await _register_study(
                conn, name, prompt_ids, prompts, models, judges, source
            )
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO metrics.study_references (study_id, prompt_id, generation_id)"
                    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    [(study_id, pid, gid) for pid, gid in references],
                )
        return study_id

    @asynccontextmanager
    async def study_lock(self, name: str, timeout_s: float) -> AsyncIterator[None]:
        """Holds the study's lock (a session advisory lock: across replicas) while writes that
        span several services run, so two imports of one study never interleave; StudyBusy
        after `timeout_s` of waiting.

        The lock lives on a connection of its own, outside the pool (a caller waiting for it,
        or holding it while other services work, takes no pooled connection), and that
        connection is closed, not unlocked, at the end: closing ends the session and with it
        the lock, whatever interrupted the caller (a cancelled RPC included)."""
        conninfo = self.pool.conninfo
        assert isinstance(conninfo, str)  # harmeval.db opens every pool from a URL
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        try:
            await conn.execute(f"SET lock_timeout = {max(1, int(timeout_s * 1000))}")
            try:
                await conn.execute(
                    "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"metrics.study:{name}",)
                )
            except psycopg.errors.LockNotAvailable as exc:
                raise StudyBusy(
                    f"study {name!r} is being imported or registered by another request"
                ) from exc
            yield
        finally:
            await conn.close()

    async def study_exists(self, name: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM metrics.studies WHERE name = %s", (name,))
            return await cur.fetchone() is not None

    async def study_model_names(self, name: str) -> list[str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT sm.name FROM metrics.study_models sm"
                " JOIN metrics.studies s ON s.id = sm.study_id"
                " WHERE s.name = %s ORDER BY sm.position",
                (name,),
            )
            return [str(r[0]) for r in await cur.fetchall()]

    async def study_definition(
        self, name: str
    ) -> tuple[list[tuple[int, PromptIn]], list[StudyModelIn], list[str]] | None:
        """A study's (prompt id, prompt) in order, small models and judges; None if unknown."""
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT id FROM metrics.studies WHERE name = %s", (name,))
            row = await cur.fetchone()
            if row is None:
                return None
            study_id = row[0]
            cur = await conn.execute(
                "SELECT sp.prompt_id, p.text, sp.category, sp.external_id"
                " FROM metrics.study_prompts sp"
                " JOIN generator.prompts_v1 p ON p.prompt_id = sp.prompt_id"
                " WHERE sp.study_id = %s ORDER BY sp.position",
                (study_id,),
            )
            prompts = [
                (int(pid), PromptIn(text=text, category=category, external_id=external_id))
                for pid, text, category, external_id in await cur.fetchall()
            ]
            cur = await conn.execute(
                "SELECT name, model_name, params FROM metrics.study_models"
                " WHERE study_id = %s ORDER BY position",
                (study_id,),
            )
            models = [
                StudyModelIn(name=n, model_name=m, params=GenerationParams.from_json(params))
                for n, m, params in await cur.fetchall()
            ]
            cur = await conn.execute(
                "SELECT judge_name FROM metrics.study_judges WHERE study_id = %s ORDER BY position",
                (study_id,),
            )
            judges = [str(r[0]) for r in await cur.fetchall()]
        return prompts, models, judges

    async def study_answers(self, name: str) -> list[StudyAnswer]:
        """Every stored answer of the study's units, in study order."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StudyAnswer))
            await cur.execute(
                "SELECT sp.prompt_id, sp.external_id, p.text AS prompt_text, sp.category,"
                " g.generation_id, sm.name AS model, g.text, g.flags"
                + _UNITS
                + " WHERE s.name = %s ORDER BY sp.position, sm.position",
                (name,),
            )
            return await cur.fetchall()

    async def study_units(self, name: str) -> set[tuple[int, str]]:
        """(prompt id, study model) of every stored answer of the study (no text read)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT sp.prompt_id, sm.name" + _UNITS + " WHERE s.name = %s", (name,)
            )
            return {(int(p), str(m)) for p, m in await cur.fetchall()}

    async def study_references(self, name: str) -> dict[int, list[str]]:
        """prompt id -> reference answers of the study."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT r.prompt_id, g.text FROM metrics.study_references r"
                " JOIN metrics.studies s ON s.id = r.study_id"
                " JOIN generator.answers_v1 g ON g.generation_id = r.generation_id"
                " WHERE s.name = %s ORDER BY r.prompt_id, g.generation_id",
                (name,),
            )
            out: dict[int, list[str]] = {}
            for prompt_id, text in await cur.fetchall():
                out.setdefault(int(prompt_id), []).append(str(text))
            return out

    async def study_flags(self, name: str) -> dict[str, tuple[int, dict[str, int]]]:
        """Per study model: (answers, {flag: answers with that flag})."""
        out: dict[str, tuple[int, dict[str, int]]] = {}
        for a in await self.study_answers(name):
            n, counts = out.get(a.model, (0, {}))
            for flag in a.flags:
                counts[flag] = counts.get(flag, 0) + 1
            out[a.model] = (n + 1, counts)
        return out

    async def study_labels(self, name: str) -> list[StudyLabel]:
        """Every label of every annotator on the study's units (prompt × study model)."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StudyLabel))
            await cur.execute(
                "SELECT j.coder, j.annotator, j.coder_kind, sp.prompt_id, sp.external_id,"
                " sp.category, sm.name AS model, g.generation_id, j.status, j.harmful, j.rank,"
                " j.value, j.order_sensitive"
                + _UNITS
                + " JOIN judge.labels_v1 j ON j.generation_id = g.generation_id"
                "  AND j.answer_sha256 = g.text_sha256"
                " WHERE s.name = %s ORDER BY j.coder, j.annotator, sp.position, sm.position",
                (name,),
            )
            return await cur.fetchall()

    async def study_inclusion(
        self, name: str
    ) -> tuple[dict[int, float], frozenset[tuple[int, str]]]:
        """For the prompts the annotation app queued (nothing without a queue, or without the
        app): prompt id -> the probability its human labels had of being asked for, the
        probability it was drawn times the share of the queue labelled so far (people get the
        queue in a random order, so the labelled prompts are a uniform part of it); and the
        (prompt id, annotator) of every label given in the app."""
        if await missing_views(self.pool, ANNOTATION_VIEWS):
            return {}, frozenset()
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT prompt_id, inclusion_probability FROM annotator.queued_v1 WHERE study = %s",
                (name,),
            )
            queued = {int(p): float(pi) for p, pi in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT prompt_id, annotator FROM annotator.labelled_v1 WHERE study = %s",
                (name,),
            )
            labelled = frozenset((int(p), str(a)) for p, a in await cur.fetchall())
        done = {p for p, _ in labelled if p in queued}
        if not done:
            return {}, labelled
        share = len(done) / len(queued)
        return {p: pi * share for p, pi in queued.items()}, labelled

    async def labelling_queue(self, name: str) -> LabellingQueue | None:
        """The study's annotation queue (None without one, or without the app): its prompts
        with their inclusion probabilities in the queue's order, who labelled each first, and
        its design and stopping rule."""
        if await missing_views(self.pool, (*ANNOTATION_VIEWS, "annotator.queues_v1")):
            return None
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT design, stop_half_width, stop_judge FROM annotator.queues_v1"
                " WHERE study = %s",
                (name,),
            )
            rule = await cur.fetchone()
            if rule is None:
                return None
            cur = await conn.execute(
                "SELECT q.prompt_id, q.inclusion_probability, f.annotator"
                " FROM annotator.queued_v1 q LEFT JOIN LATERAL ("
                "   SELECT l.annotator FROM annotator.labelled_v1 l"
                "   WHERE l.study = q.study AND l.prompt_id = q.prompt_id"
                "   ORDER BY coalesce(l.labelled_at, l.created_at), l.annotator LIMIT 1) f ON true"
                " WHERE q.study = %s ORDER BY q.position, q.prompt_id",
                (name,),
            )
            rows = await cur.fetchall()
        return LabellingQueue(
            design=str(rule[0]),
            stop_half_width=None if rule[1] is None else float(rule[1]),
            stop_judge=str(rule[2]),
            queued={int(p): float(pi) for p, pi, _ in rows},
            order=[(int(p), None if a is None else str(a)) for p, _, a in rows],
        )

    async def count_rows(self, table: str) -> int:
        """Row count of one of this service's tables (tests show nothing was duplicated)."""
        return await count_rows(self.pool, SCHEMA, table)
