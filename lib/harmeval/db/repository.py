"""Every SQL statement harmeval runs, behind typed methods. Writes are transactions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from harmeval.params import GenerationParams, config_hash, text_sha256


@dataclass(frozen=True)
class PromptIn:
    text: str
    category: str = "uncategorized"
    external_id: str = ""


@dataclass(frozen=True)
class StoredPrompt:
    id: int
    text: str
    category: str


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class NewGeneration:
    prompt_id: int
    model_id: int
    params: GenerationParams
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_seconds: float
    finish_reason: str


@dataclass(frozen=True)
class JudgeRecord:
    annotator_id: int
    config_hash: str


@dataclass(frozen=True)
class StoredJudgment:
    generation_id: int
    protocol: str
    status: str
    harmful: bool | None
    value: float | None
    rank: int | None
    raw_output: str
    reason: str


@dataclass(frozen=True)
class StudyModelIn:
    name: str
    model_name: str
    params: GenerationParams


@dataclass(frozen=True)
class StudyLabel:
    """One coder's label of one unit (prompt, study model) of a study."""

    coder: str
    coder_kind: str
    prompt_id: int
    category: str
    model: str
    status: str
    harmful: bool | None
    rank: int | None
    value: float | None


class Repository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- prompts -------------------------------------------------------------------------

    async def upsert_prompts(self, prompts: Sequence[PromptIn]) -> list[int]:
        """Stores prompts once per distinct text; returns their ids in input order."""
        ids: list[int] = []
        async with self.pool.connection() as conn, conn.transaction():
            for p in prompts:
                cur = await conn.execute(
                    "INSERT INTO prompts (text_sha256, text, category) VALUES (%s, %s, %s)"
                    " ON CONFLICT (text_sha256) DO UPDATE SET category = CASE"
                    "   WHEN EXCLUDED.category <> 'uncategorized' THEN EXCLUDED.category"
                    "   ELSE prompts.category END"
                    " RETURNING id",
                    (text_sha256(p.text), p.text, p.category or "uncategorized"),
                )
                row = await cur.fetchone()
                assert row is not None
                ids.append(int(row[0]))
        return ids

    async def get_prompts(self, ids: Sequence[int]) -> dict[int, StoredPrompt]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredPrompt))
            await cur.execute(
                "SELECT id, text, category FROM prompts WHERE id = ANY(%s)", (list(ids),)
            )
            return {p.id: p for p in await cur.fetchall()}

    # -- models and generations ----------------------------------------------------------

    async def upsert_model(self, name: str, backend: str, settings: dict[str, Any]) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO models (name, backend, settings) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET backend = EXCLUDED.backend,"
                " settings = EXCLUDED.settings RETURNING id",
                (name, backend, Jsonb(settings)),
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

    async def find_generations(
        self, model_id: int, params: GenerationParams, prompt_ids: Sequence[int]
    ) -> dict[int, StoredGeneration]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredGeneration))
            await cur.execute(
                "SELECT id, prompt_id, model_id, params, text, prompt_tokens, completion_tokens,"
                " latency_seconds, finish_reason FROM generations"
                " WHERE model_id = %s AND params_hash = %s AND prompt_id = ANY(%s)",
                (model_id, params.cache_key(), list(prompt_ids)),
            )
            return {g.prompt_id: g for g in await cur.fetchall()}

    async def insert_generation(self, g: NewGeneration) -> StoredGeneration:
        """Stores an answer; when a concurrent request stored the same one first, returns that."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO generations (prompt_id, model_id, params, params_hash, seed, text,"
                " prompt_tokens, completion_tokens, latency_seconds, finish_reason)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (prompt_id, model_id, params_hash) DO NOTHING",
                (
                    g.prompt_id,
                    g.model_id,
                    Jsonb(g.params.as_json()),
                    g.params.cache_key(),
                    g.params.seed,
                    g.text,
                    g.prompt_tokens,
                    g.completion_tokens,
                    g.latency_seconds,
                    g.finish_reason,
                ),
            )
        stored = await self.find_generations(g.model_id, g.params, [g.prompt_id])
        return stored[g.prompt_id]

    async def existing_generation_ids(self, ids: Sequence[int]) -> set[int]:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT id FROM generations WHERE id = ANY(%s)", (list(ids),))
            return {int(r[0]) for r in await cur.fetchall()}

    # -- judges and judgments ------------------------------------------------------------

    async def upsert_annotator(self, name: str, kind: str) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO annotators (name, kind) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind RETURNING id",
                (name, kind),
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

    async def upsert_judge(
        self, name: str, family: str, protocol: str, config: dict[str, Any]
    ) -> JudgeRecord:
        annotator_id = await self.upsert_annotator(name, "model")
        digest = config_hash({"family": family, "protocol": protocol, **config})
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO judges (annotator_id, family, protocol, config, config_hash)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (annotator_id) DO UPDATE SET"
                " family = EXCLUDED.family, protocol = EXCLUDED.protocol,"
                " config = EXCLUDED.config, config_hash = EXCLUDED.config_hash, updated_at = now()",
                (annotator_id, family, protocol, Jsonb(config), digest),
            )
        return JudgeRecord(annotator_id, digest)

    async def find_judgments(
        self, judge: JudgeRecord, generation_ids: Sequence[int]
    ) -> dict[int, StoredJudgment]:
        """Verdicts this judge, in its current configuration, already gave."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredJudgment))
            await cur.execute(
                "SELECT generation_id, protocol, status, harmful, value, rank, raw_output, reason"
                " FROM judgments WHERE annotator_id = %s AND judge_config_hash = %s"
                " AND generation_id = ANY(%s)",
                (judge.annotator_id, judge.config_hash, list(generation_ids)),
            )
            return {j.generation_id: j for j in await cur.fetchall()}

    async def store_judgments(
        self, judge: JudgeRecord, judgments: Sequence[StoredJudgment]
    ) -> None:
        """Stores one judge's verdicts on a set of answers together, replacing older ones."""
        async with self.pool.connection() as conn, conn.transaction():
            for j in judgments:
                await conn.execute(
                    "INSERT INTO judgments (generation_id, annotator_id, protocol,"
                    " judge_config_hash, status, harmful, value, rank, raw_output, reason)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (generation_id, annotator_id) DO UPDATE SET"
                    " protocol = EXCLUDED.protocol, judge_config_hash = EXCLUDED.judge_config_hash,"
                    " status = EXCLUDED.status, harmful = EXCLUDED.harmful, value = EXCLUDED.value,"
                    " rank = EXCLUDED.rank, raw_output = EXCLUDED.raw_output,"
                    " reason = EXCLUDED.reason, created_at = now()",
                    (
                        j.generation_id,
                        judge.annotator_id,
                        j.protocol,
                        judge.config_hash,
                        j.status,
                        j.harmful,
                        j.value,
                        j.rank,
                        j.raw_output,
                        j.reason,
                    ),
                )

    # -- studies -------------------------------------------------------------------------

    async def register_study(
        self,
        name: str,
        prompts: Sequence[PromptIn],
        models: Sequence[StudyModelIn],
        judges: Sequence[str],
    ) -> tuple[int, list[int]]:
        """Creates or updates a study in one transaction; returns (study id, prompt ids)."""
        prompt_ids = await self.upsert_prompts(prompts)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO studies (name) VALUES (%s) ON CONFLICT (name)"
                " DO UPDATE SET updated_at = now() RETURNING id",
                (name,),
            )
            row = await cur.fetchone()
            assert row is not None
            study_id = int(row[0])
            # The study file is the truth: membership is replaced, stored answers are kept.
            for table in ("study_prompts", "study_models", "study_judges"):
                await conn.execute(f"DELETE FROM {table} WHERE study_id = %s", (study_id,))
            for position, (pid, p) in enumerate(zip(prompt_ids, prompts, strict=True)):
                await conn.execute(
                    "INSERT INTO study_prompts (study_id, prompt_id, external_id, position)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (study_id, pid, p.external_id or str(pid), position),
                )
            for position, m in enumerate(models):
                await conn.execute(
                    "INSERT INTO study_models (study_id, name, model_name, params, params_hash,"
                    " position) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        study_id,
                        m.name,
                        m.model_name,
                        Jsonb(m.params.as_json()),
                        m.params.cache_key(),
                        position,
                    ),
                )
            for position, judge in enumerate(judges):
                await conn.execute(
                    "INSERT INTO study_judges (study_id, judge_name, position) VALUES (%s, %s, %s)",
                    (study_id, judge, position),
                )
        return study_id, prompt_ids

    async def study_exists(self, name: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM studies WHERE name = %s", (name,))
            return await cur.fetchone() is not None

    async def study_labels(self, name: str) -> list[StudyLabel]:
        """Every label of every coder on the study's units (prompt × study model)."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StudyLabel))
            await cur.execute(
                "SELECT a.name AS coder, a.kind AS coder_kind, p.id AS prompt_id, p.category,"
                " sm.name AS model, j.status, j.harmful, j.rank, j.value"
                " FROM studies s"
                " JOIN study_models sm ON sm.study_id = s.id"
                " JOIN study_prompts sp ON sp.study_id = s.id"
                " JOIN prompts p ON p.id = sp.prompt_id"
                " JOIN models m ON m.name = sm.model_name"
                " JOIN generations g ON g.prompt_id = sp.prompt_id AND g.model_id = m.id"
                "  AND g.params_hash = sm.params_hash"
                " JOIN judgments j ON j.generation_id = g.id"
                " JOIN annotators a ON a.id = j.annotator_id"
                " WHERE s.name = %s ORDER BY a.name, sp.position, sm.position",
                (name,),
            )
            return await cur.fetchall()

    async def count_rows(self, table: str) -> int:
        """Row count of one table (tests and `status` use it to show nothing was duplicated)."""
        if table not in {"prompts", "generations", "judgments", "studies", "study_prompts"}:
            raise ValueError(f"unknown table {table}")
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT count(*) FROM {table}")
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])
