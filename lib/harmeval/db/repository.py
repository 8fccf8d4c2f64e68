"""Every SQL statement harmeval runs, behind typed methods.

Public methods each run in their own transaction; the `_`-prefixed helpers take a connection
so that a multi-step write (an import, a study registration) is one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from harmeval.params import GenerationParams, config_hash, text_sha256

IMPORTED_BACKEND = "imported"
IMPORTED_PROTOCOL = "imported"


class ModelIdentityChanged(RuntimeError):
    """A model name is served differently from how its stored answers were made."""


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
    flags: list[str]
    ttft_seconds: float | None


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
    flags: tuple[str, ...] = ()
    ttft_seconds: float | None = None


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
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    order_sensitive: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyModelIn:
    name: str
    model_name: str
    params: GenerationParams


@dataclass(frozen=True)
class StudyLabel:
    """One annotator's label of one unit (prompt, study model) of a study."""

    coder: str
    annotator: str
    coder_kind: str
    prompt_id: int
    external_id: str
    category: str
    model: str
    generation_id: int
    status: str
    harmful: bool | None
    rank: int | None
    value: float | None
    order_sensitive: bool = False


@dataclass(frozen=True)
class StudyAnswer:
    prompt_id: int
    external_id: str
    prompt_text: str
    category: str
    generation_id: int
    model: str
    text: str
    flags: list[str]


@dataclass(frozen=True)
class ImportAnswer:
    prompt_index: int
    model: str
    text: str


@dataclass(frozen=True)
class ImportLabel:
    prompt_index: int
    model: str
    coder: str
    annotator: str
    annotator_kind: str
    status: str
    harmful: bool | None
    value: float | None
    rank: int | None
    raw_output: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Annotation:
    """A human label of a stored answer."""

    generation_id: int
    annotator: str
    harmful: bool
    value: float | None
    rank: int | None


# -- helpers on one connection ---------------------------------------------------------------


async def _returned_ids(cur: AsyncCursor[Any]) -> list[int]:
    """The id each statement of an `executemany(..., returning=True)` returned, in order."""
    ids = []
    while True:
        row = await cur.fetchone()
        assert row is not None
        ids.append(int(row[0]))
        if not cur.nextset():
            return ids


async def _upsert_prompts(conn: AsyncConnection[Any], prompts: Sequence[PromptIn]) -> list[int]:
    if not prompts:
        return []
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO prompts (text_sha256, text, category) VALUES (%s, %s, %s)"
            " ON CONFLICT (text_sha256) DO UPDATE SET category = CASE"
            "   WHEN EXCLUDED.category <> 'uncategorized' THEN EXCLUDED.category"
            "   ELSE prompts.category END"
            " RETURNING id",
            [(text_sha256(p.text), p.text, p.category or "uncategorized") for p in prompts],
            returning=True,
        )
        return await _returned_ids(cur)


async def _upsert_model(
    conn: AsyncConnection[Any], name: str, backend: str, settings: dict[str, Any]
) -> int:
    cur = await conn.execute(
        "INSERT INTO models (name, backend, settings) VALUES (%s, %s, %s)"
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
            "INSERT INTO generations (prompt_id, model_id, params, params_hash, seed, text,"
            " prompt_tokens, completion_tokens, latency_seconds, finish_reason, flags,"
            " ttft_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
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
        return await _returned_ids(cur)


def imported_model(study: str, model: str) -> str:
    """The model an imported answer is stored under: scoped to its study (reports show the
    study's own name for it)."""
    return f"{study}/{model}"


async def _replace_changed_texts(
    conn: AsyncConnection[Any], ids: Sequence[int], texts: Sequence[str]
) -> None:
    """Imported answers whose text differs from the stored one take the new text; verdicts
    given on the old text go with it."""
    cur = await conn.execute(
        "UPDATE generations g SET text = n.text"
        " FROM unnest(%s::bigint[], %s::text[]) AS n(id, text)"
        " WHERE g.id = n.id AND g.text <> n.text RETURNING g.id",
        (list(ids), list(texts)),
    )
    changed = [int(r[0]) for r in await cur.fetchall()]
    if changed:
        await conn.execute("DELETE FROM judgments WHERE generation_id = ANY(%s)", (changed,))


async def _upsert_annotator(
    conn: AsyncConnection[Any], name: str, kind: str, coder: str | None = None
) -> int:
    """An annotator's id; `coder` (default: the annotator's own name, for a new one) is the
    coder it is reported under. Without `coder` an existing annotator keeps its coder: adding
    annotations by "group-1" must not take it out of the "students" it was imported under."""
    cur = await conn.execute(
        "INSERT INTO annotators (name, kind, coder) VALUES (%s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind,"
        " coder = CASE WHEN %s THEN EXCLUDED.coder ELSE annotators.coder END"
        " RETURNING id",
        (name, kind, coder or name, coder is not None),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


_UPSERT_JUDGMENT = (
    "INSERT INTO judgments (generation_id, annotator_id, protocol,"
    " judge_config_hash, status, harmful, value, rank, raw_output, reason,"
    " prompt_tokens, completion_tokens, cost_usd, order_sensitive, details)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (generation_id, annotator_id) DO UPDATE SET"
    " protocol = EXCLUDED.protocol, judge_config_hash = EXCLUDED.judge_config_hash,"
    " status = EXCLUDED.status, harmful = EXCLUDED.harmful, value = EXCLUDED.value,"
    " rank = EXCLUDED.rank, raw_output = EXCLUDED.raw_output,"
    " reason = EXCLUDED.reason, prompt_tokens = EXCLUDED.prompt_tokens,"
    " completion_tokens = EXCLUDED.completion_tokens, cost_usd = EXCLUDED.cost_usd,"
    " order_sensitive = EXCLUDED.order_sensitive, details = EXCLUDED.details,"
    " created_at = now()"
)


def _judgment_row(annotator_id: int, config_hash: str, j: StoredJudgment) -> tuple[Any, ...]:
    """Parameters of _UPSERT_JUDGMENT for one verdict."""
    return (
        j.generation_id,
        annotator_id,
        j.protocol,
        config_hash,
        j.status,
        j.harmful,
        j.value,
        j.rank,
        j.raw_output,
        j.reason,
        j.prompt_tokens,
        j.completion_tokens,
        j.cost_usd,
        j.order_sensitive,
        Jsonb(j.details),
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
        "INSERT INTO studies (name, source) VALUES (%s, %s) ON CONFLICT (name)"
        " DO UPDATE SET updated_at = now(), source = EXCLUDED.source RETURNING id",
        (name, source),
    )
    row = await cur.fetchone()
    assert row is not None
    study_id = int(row[0])
    # The study file is the truth: membership is replaced, stored answers are kept.
    for table in ("study_prompts", "study_models", "study_judges", "study_references"):
        await conn.execute(f"DELETE FROM {table} WHERE study_id = %s", (study_id,))
    async with conn.cursor() as c:
        await c.executemany(
            "INSERT INTO study_prompts (study_id, prompt_id, external_id, position, category)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (study_id, pid, p.external_id or str(pid), position, p.category or "uncategorized")
                for position, (pid, p) in enumerate(zip(prompt_ids, prompts, strict=True))
            ],
        )
        await c.executemany(
            "INSERT INTO study_models (study_id, name, model_name, params, params_hash,"
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
            "INSERT INTO study_judges (study_id, judge_name, position) VALUES (%s, %s, %s)",
            [(study_id, judge, position) for position, judge in enumerate(judges)],
        )
    return study_id


class Repository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- prompts, models, generations --------------------------------------------------------

    async def upsert_prompts(self, prompts: Sequence[PromptIn]) -> list[int]:
        """Stores prompts once per distinct text; returns their ids in input order."""
        async with self.pool.connection() as conn, conn.transaction():
            return await _upsert_prompts(conn, prompts)

    async def get_prompts(self, ids: Sequence[int]) -> dict[int, StoredPrompt]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredPrompt))
            await cur.execute(
                "SELECT id, text, category FROM prompts WHERE id = ANY(%s)", (list(ids),)
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
                "SELECT settings -> 'identity' FROM models WHERE name = %s FOR UPDATE", (name,)
            )
            row = await cur.fetchone()
            if row is not None and row[0] is not None and row[0] != identity:
                raise ModelIdentityChanged(
                    f"model {name!r} has stored answers from {row[0]}, but is now served as "
                    f"{identity}: give it a new name (its stored answers belong to the old one)"
                )
            return await _upsert_model(conn, name, backend, {**settings, "identity": identity})

    async def upsert_model(self, name: str, backend: str, settings: dict[str, Any]) -> int:
        async with self.pool.connection() as conn:
            return await _upsert_model(conn, name, backend, settings)

    async def find_generations(
        self, model_id: int, params: GenerationParams, prompt_ids: Sequence[int]
    ) -> dict[int, StoredGeneration]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredGeneration))
            await cur.execute(
                "SELECT id, prompt_id, model_id, params, text, prompt_tokens, completion_tokens,"
                " latency_seconds, finish_reason, flags, ttft_seconds FROM generations"
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

    async def existing_generation_ids(self, ids: Sequence[int]) -> set[int]:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT id FROM generations WHERE id = ANY(%s)", (list(ids),))
            return {int(r[0]) for r in await cur.fetchall()}

    # -- judges and judgments ----------------------------------------------------------------

    async def upsert_judge(
        self, name: str, family: str, protocol: str, config: dict[str, Any]
    ) -> JudgeRecord:
        digest = config_hash({"family": family, "protocol": protocol, **config})
        async with self.pool.connection() as conn, conn.transaction():
            annotator_id = await _upsert_annotator(conn, name, "model")
            await conn.execute(
                "INSERT INTO judges (annotator_id, family, protocol, config, config_hash)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (annotator_id) DO UPDATE SET"
                " family = EXCLUDED.family, protocol = EXCLUDED.protocol,"
                " config = EXCLUDED.config, config_hash = EXCLUDED.config_hash,"
                " updated_at = now()",
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
                "SELECT generation_id, protocol, status, harmful, value, rank, raw_output, reason,"
                " prompt_tokens, completion_tokens, cost_usd, order_sensitive, details"
                " FROM judgments WHERE annotator_id = %s AND judge_config_hash = %s"
                " AND generation_id = ANY(%s)",
                (judge.annotator_id, judge.config_hash, list(generation_ids)),
            )
            return {j.generation_id: j for j in await cur.fetchall()}

    async def store_judgments(
        self, judge: JudgeRecord, judgments: Sequence[StoredJudgment]
    ) -> None:
        """Stores one judge's verdicts on a set of answers together, replacing older ones."""
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                _UPSERT_JUDGMENT,
                [_judgment_row(judge.annotator_id, judge.config_hash, j) for j in judgments],
            )

    # -- studies -----------------------------------------------------------------------------

    async def register_study(
        self,
        name: str,
        prompts: Sequence[PromptIn],
        models: Sequence[StudyModelIn],
        judges: Sequence[str],
    ) -> tuple[int, list[int]]:
        """Creates or updates a study in one transaction; returns (study id, prompt ids)."""
        async with self.pool.connection() as conn, conn.transaction():
            prompt_ids = await _upsert_prompts(conn, prompts)
            study_id = await _register_study(conn, name, prompt_ids, prompts, models, judges, "run")
        return study_id, prompt_ids

    async def import_study(
        self,
        name: str,
        prompts: Sequence[PromptIn],
        models: Sequence[str],
        answers: Sequence[ImportAnswer],
        labels: Sequence[ImportLabel],
        references: Sequence[ImportAnswer] = (),
    ) -> int:
        """Stores a published data set as a study, all in one transaction.

        Imported answers belong to their study: two data sets with the same prompt and a model
        of the same name (HarmMetric v1 and v2 both have "slot-01") keep their own texts and
        labels. Importing a study again replaces its labels and any answer whose text changed
        (with every verdict on the old text).
        """
        params = GenerationParams()
        async with self.pool.connection() as conn, conn.transaction():
            prompt_ids = await _upsert_prompts(conn, prompts)
            model_ids = {
                m: await _upsert_model(conn, imported_model(name, m), IMPORTED_BACKEND, {})
                for m in {*models, *(r.model for r in references)}
            }

            def new(a: ImportAnswer, model: str) -> NewGeneration:
                return NewGeneration(
                    prompt_ids[a.prompt_index],
                    model_ids[model],
                    params,
                    a.text,
                    0,
                    0,
                    0.0,
                    IMPORTED_BACKEND,
                )

            answer_ids = await _insert_generations(conn, [new(a, a.model) for a in answers])
            reference_ids = await _insert_generations(conn, [new(r, r.model) for r in references])
            await _replace_changed_texts(
                conn, [*answer_ids, *reference_ids], [a.text for a in (*answers, *references)]
            )
            await conn.execute(
                "DELETE FROM judgments WHERE protocol = %s AND generation_id = ANY(%s)",
                (IMPORTED_PROTOCOL, answer_ids),
            )
            study_id = await _register_study(
                conn,
                name,
                prompt_ids,
                prompts,
                [StudyModelIn(m, imported_model(name, m), params) for m in models],
                sorted({label.coder for label in labels}),
                "import",
            )
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO study_references (study_id, prompt_id, generation_id)"
                    " VALUES (%s, %s, %s)",
                    [
                        (study_id, prompt_ids[r.prompt_index], gid)
                        for r, gid in zip(references, reference_ids, strict=True)
                    ],
                )
            generation_of = {
                (a.prompt_index, a.model): gid for a, gid in zip(answers, answer_ids, strict=True)
            }
            annotator_ids: dict[str, int] = {}
            for label in labels:
                if label.annotator not in annotator_ids:
                    annotator_ids[label.annotator] = await _upsert_annotator(
                        conn, label.annotator, label.annotator_kind, label.coder
                    )
            async with conn.cursor() as cur:
                await cur.executemany(
                    _UPSERT_JUDGMENT,
                    [
                        _judgment_row(
                            annotator_ids[lb.annotator],
                            "",
                            StoredJudgment(
                                generation_of[(lb.prompt_index, lb.model)],
                                IMPORTED_PROTOCOL,
                                lb.status,
                                lb.harmful,
                                lb.value,
                                lb.rank,
                                lb.raw_output,
                                lb.reason,
                            ),
                        )
                        for lb in labels
                    ],
                )
        return study_id

    async def study_exists(self, name: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM studies WHERE name = %s", (name,))
            return await cur.fetchone() is not None

    async def study_model_names(self, name: str) -> list[str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT sm.name FROM study_models sm JOIN studies s ON s.id = sm.study_id"
                " WHERE s.name = %s ORDER BY sm.position",
                (name,),
            )
            return [str(r[0]) for r in await cur.fetchall()]

    async def study_answers(self, name: str) -> list[StudyAnswer]:
        """Every stored answer of the study's units, in study order."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StudyAnswer))
            await cur.execute(
                "SELECT p.id AS prompt_id, sp.external_id, p.text AS prompt_text, sp.category,"
                " g.id AS generation_id, sm.name AS model, g.text, g.flags"
                " FROM studies s"
                " JOIN study_prompts sp ON sp.study_id = s.id"
                " JOIN prompts p ON p.id = sp.prompt_id"
                " JOIN study_models sm ON sm.study_id = s.id"
                " JOIN models m ON m.name = sm.model_name"
                " JOIN generations g ON g.prompt_id = p.id AND g.model_id = m.id"
                "  AND g.params_hash = sm.params_hash"
                " WHERE s.name = %s ORDER BY sp.position, sm.position",
                (name,),
            )
            return await cur.fetchall()

    async def study_references(self, name: str) -> dict[int, list[str]]:
        """prompt id -> reference answers of the study."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT r.prompt_id, g.text FROM study_references r"
                " JOIN studies s ON s.id = r.study_id JOIN generations g ON g.id = r.generation_id"
                " WHERE s.name = %s ORDER BY r.prompt_id, g.id",
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
                "SELECT a.coder, a.name AS annotator, a.kind AS coder_kind, p.id AS prompt_id,"
                " sp.external_id, sp.category, sm.name AS model, g.id AS generation_id,"
                " j.status, j.harmful, j.rank, j.value, j.order_sensitive"
                " FROM studies s"
                " JOIN study_models sm ON sm.study_id = s.id"
                " JOIN study_prompts sp ON sp.study_id = s.id"
                " JOIN prompts p ON p.id = sp.prompt_id"
                " JOIN models m ON m.name = sm.model_name"
                " JOIN generations g ON g.prompt_id = sp.prompt_id AND g.model_id = m.id"
                "  AND g.params_hash = sm.params_hash"
                " JOIN judgments j ON j.generation_id = g.id"
                " JOIN annotators a ON a.id = j.annotator_id"
                " WHERE s.name = %s ORDER BY a.coder, a.name, sp.position, sm.position",
                (name,),
            )
            return await cur.fetchall()

    async def existing_annotations(
        self, annotators: Sequence[str], generation_ids: Sequence[int]
    ) -> set[tuple[str, int]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT a.name, j.generation_id FROM judgments j"
                " JOIN annotators a ON a.id = j.annotator_id"
                " WHERE a.name = ANY(%s) AND j.generation_id = ANY(%s)",
                (list(annotators), list(generation_ids)),
            )
            return {(str(r[0]), int(r[1])) for r in await cur.fetchall()}

    async def store_annotations(self, annotations: Sequence[Annotation]) -> None:
        """Stores human labels in one transaction (replacing a person's earlier label)."""
        async with self.pool.connection() as conn, conn.transaction():
            ids: dict[str, int] = {}
            for a in annotations:
                if a.annotator not in ids:
                    ids[a.annotator] = await _upsert_annotator(conn, a.annotator, "human")
            async with conn.cursor() as cur:
                await cur.executemany(
                    _UPSERT_JUDGMENT,
                    [
                        _judgment_row(
                            ids[a.annotator],
                            "",
                            StoredJudgment(
                                a.generation_id, "human", "ok", a.harmful, a.value, a.rank, "", ""
                            ),
                        )
                        for a in annotations
                    ],
                )

    async def count_rows(self, table: str) -> int:
        """Row count of one table (tests use it to show nothing was duplicated)."""
        if table not in {
            "prompts",
            "generations",
            "judgments",
            "studies",
            "study_prompts",
            "annotators",
        }:
            raise ValueError(f"unknown table {table}")
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT count(*) FROM {table}")
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])
