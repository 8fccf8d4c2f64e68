"""The generator's tables (schema `generator`): prompts, models and answers.

Public methods each run in their own transaction; the `_`-prefixed helpers take a connection
so that a multi-step write (an import) is one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from harmeval.db import Schema, count_rows, returned_ids
from harmeval.params import GenerationParams, text_sha256

SCHEMA = Schema(
    name="generator",
    migrations_package="harmeval_generator.migrations",
    tables=("prompts", "models", "generations"),
)
# Answers made elsewhere (published data sets) are stored under models of this backend.
IMPORTED_BACKEND = "imported"


class ModelIdentityChanged(RuntimeError):
    """A model name is served differently from how its stored answers were made."""


class ServedModelName(ValueError):
    """Imported answers named after a served model would be returned as that model's."""


@dataclass(frozen=True, kw_only=True)
class PromptIn:
    """A prompt to store (once per text; a study's own ids for it are the metrics service's)."""

    text: str
    category: str = "uncategorized"


@dataclass(frozen=True, kw_only=True)
class StoredPrompt:
    id: int
    text: str
    category: str


@dataclass(frozen=True, kw_only=True)
class StoredGeneration:
    id: int
    prompt_id: int
    model_id: int
    params: dict[str, Any]
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_seconds: float
    finish_reason: str
    flags: list[str]
    ttft_seconds: float | None


@dataclass(frozen=True, kw_only=True)
class NewGeneration:
    prompt_id: int
    model_id: int
    params: GenerationParams
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_seconds: float
    finish_reason: str
    flags: tuple[str, ...] = ()
    ttft_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class ImportAnswer:
    prompt_index: int
    model: str
    text: str


async def _upsert_prompts(conn: AsyncConnection[Any], prompts: Sequence[PromptIn]) -> list[int]:
    if not prompts:
        return []
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO generator.prompts (text_sha256, text, category) VALUES (%s, %s, %s)"
            " ON CONFLICT (text_sha256) DO UPDATE SET category = CASE"
            "   WHEN EXCLUDED.category <> 'uncategorized' THEN EXCLUDED.category"
            "   ELSE prompts.category END"
            " RETURNING id",
            [(text_sha256(p.text), p.text, p.category or "uncategorized") for p in prompts],
            returning=True,
        )
        return await returned_ids(cur)


async def _upsert_model(
    conn: AsyncConnection[Any], name: str, backend: str, settings: dict[str, Any]
) -> int:
    cur = await conn.execute(
        "INSERT INTO generator.models (name, backend, settings) VALUES (%s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET backend = EXCLUDED.backend,"
        " settings = EXCLUDED.settings RETURNING id",
        (name, backend, Jsonb(settings)),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _insert_generations(
    conn: AsyncConnection[Any], generations: Sequence[NewGeneration]
) -> list[int]:
    """Stores answers, keeping any already stored for the same key; returns ids in order."""
    if not generations:
        return []
    async with conn.cursor() as cur:
        # The no-op update makes RETURNING give the id of an existing row too.
        await cur.executemany(
            "INSERT INTO generator.generations (prompt_id, model_id, params, params_hash, seed,"
            " text, text_sha256, prompt_tokens, completion_tokens, latency_seconds,"
            " finish_reason, flags, ttft_seconds)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (prompt_id, model_id, params_hash)"
            " DO UPDATE SET params_hash = generations.params_hash RETURNING id",
            [
                (
                    g.prompt_id,
                    g.model_id,
                    Jsonb(g.params.as_json()),
                    g.params.cache_key(),
                    g.params.seed,
                    g.text,
                    text_sha256(g.text),
                    g.prompt_tokens,
                    g.completion_tokens,
                    g.latency_seconds,
                    g.finish_reason,
                    list(g.flags),
                    g.ttft_seconds,
                )
                for g in generations
            ],
            returning=True,
        )
        return await returned_ids(cur)


class GeneratorStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def upsert_prompts(self, prompts: Sequence[PromptIn]) -> list[int]:
        """Stores prompts once per distinct text; returns their ids in input order."""
        async with self.pool.connection() as conn, conn.transaction():
            return await _upsert_prompts(conn, prompts)

    async def get_prompts(self, ids: Sequence[int]) -> dict[int, StoredPrompt]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredPrompt))
            await cur.execute(
                "SELECT id, text, category FROM generator.prompts WHERE id = ANY(%s)", (list(ids),)
            )
            return {p.id: p for p in await cur.fetchall()}

    async def register_served_model(
        self, name: str, backend: str, settings: dict[str, Any], identity: dict[str, str]
    ) -> int:
        """Records a model a generator serves. Stored answers are found by model name, so a
        name already stored with another `identity` (other weights, template or prompt
        format) is refused: its answers would be served as the new model's."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT settings -> 'identity' FROM generator.models WHERE name = %s FOR UPDATE",
                (name,),
            )
            row = await cur.fetchone()
            if row is not None and row[0] is not None and row[0] != identity:
                raise ModelIdentityChanged(
                    f"model {name!r} has stored answers from {row[0]}, but is now served as "
                    f"{identity}: give it a new name (its stored answers belong to the old one)"
                )
            return await _upsert_model(conn, name, backend, {**settings, "identity": identity})

    async def find_generations(
        self, model_id: int, params: GenerationParams, prompt_ids: Sequence[int]
    ) -> dict[int, StoredGeneration]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredGeneration))
            await cur.execute(
                "SELECT id, prompt_id, model_id, params, text, prompt_tokens, completion_tokens,"
                " latency_seconds, finish_reason, flags, ttft_seconds FROM generator.generations"
                " WHERE model_id = %s AND params_hash = %s AND prompt_id = ANY(%s)",
                (model_id, params.cache_key(), list(prompt_ids)),
            )
            return {g.prompt_id: g for g in await cur.fetchall()}

    async def insert_generation(self, g: NewGeneration) -> StoredGeneration:
        """Stores an answer; when a concurrent request stored the same one first, returns that."""
        async with self.pool.connection() as conn, conn.transaction():
            await _insert_generations(conn, [g])
        stored = await self.find_generations(g.model_id, g.params, [g.prompt_id])
        return stored[g.prompt_id]

    async def import_generations(
        self, prompts: Sequence[PromptIn], answers: Sequence[ImportAnswer]
    ) -> tuple[list[int], list[int]]:
        """Stores prompts and answers made elsewhere in one transaction; returns (prompt ids,
        answer ids) in input order. An answer stored before with another text takes the new
        text: labels record the text they were given on, so those of the old text stop
        counting without this service touching them."""
        params = GenerationParams()
        names = sorted({a.model for a in answers})
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT name FROM generator.models WHERE name = ANY(%s) AND backend <> %s",
                (names, IMPORTED_BACKEND),
            )
            served = [str(r[0]) for r in await cur.fetchall()]
            if served:
                raise ServedModelName(
                    f"models {served} are served by a generator; imported answers need "
                    "names of their own"
                )
            prompt_ids = await _upsert_prompts(conn, prompts)
            model_ids = {m: await _upsert_model(conn, m, IMPORTED_BACKEND, {}) for m in names}
            answer_ids = await _insert_generations(
                conn,
                [
                    NewGeneration(
                        prompt_id=prompt_ids[a.prompt_index],
                        model_id=model_ids[a.model],
                        params=params,
                        text=a.text,
                        prompt_tokens=0,
                        completion_tokens=0,
                        latency_seconds=0.0,
                        finish_reason=IMPORTED_BACKEND,
                    )
                    for a in answers
                ],
            )
            if answer_ids:
                await conn.execute(
                    "UPDATE generator.generations g SET text = n.text, text_sha256 = n.sha256"
                    " FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS n(id, text, sha256)"
                    " WHERE g.id = n.id AND g.text <> n.text",
                    (answer_ids, [a.text for a in answers], [text_sha256(a.text) for a in answers]),
                )
        return prompt_ids, answer_ids

    async def count_rows(self, table: str) -> int:
        """Row count of one of this service's tables (tests show nothing was duplicated)."""
        return await count_rows(self.pool, SCHEMA, table)
