"""The judge service's tables (schema `judge`): annotators (judges and people, each reported
under a coder), judge configurations and every label.

Answers are the generator's: read through its published view `generator.answers_v1`, never
its tables. Public methods each run in their own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from harmeval.db import PublishedViewMissing, Schema, count_rows
from harmeval.params import config_hash
from harmeval.verdicts import VerdictStatus

SCHEMA = Schema(
    name="judge",
    migrations_package="harmeval_judge.migrations",
    tables=("annotators", "judges", "judgments"),
)


@dataclass(frozen=True, kw_only=True)
class JudgeRecord:
    annotator_id: int
    config_hash: str


@dataclass(frozen=True, kw_only=True)
class StoredJudgment:
    generation_id: int
    protocol: str
    status: VerdictStatus
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
    # sha256 of the answer text the label was given on: it counts, and is reused, only while
    # the answer has that text.
    answer_sha256: str


class JudgeNameTaken(Exception):
    """Labels were sent under the name of a judge: its verdicts come only from judging."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(
            f"annotator(s) {sorted(names)} are judges of this service (defined here or by "
            "another replica); their verdicts come only from judging"
        )


class JudgeOwned(Exception):
    """A definition would replace a judge another study (or none) defined."""

    def __init__(self, name: str, owner: str | None) -> None:
        if owner is None:
            message = (
                f"judge {name!r} is built in (the service's settings or judges file): no "
                "definition replaces it; choose another name"
            )
        else:
            whose = f"study {owner!r}" if owner else "a definition without a study"
            message = (
                f"judge {name!r} is already defined, by {whose}, with another definition; "
                "only a definition for that study replaces it: choose another name"
            )
        super().__init__(message)
        self.owner = owner


class LabelsAlreadyStored(Exception):
    """Labels already stored for the same (annotator, answer), and overwriting was not asked."""

    def __init__(self, clashes: Sequence[tuple[str, int]]) -> None:
        super().__init__(f"{len(clashes)} label(s) already stored")
        self.clashes = list(clashes)


@dataclass(frozen=True, kw_only=True)
class ImportedLabel:
    """A label given elsewhere (a data set's coder, a person) on a stored answer."""

    judgment: StoredJudgment
    annotator: str
    annotator_kind: str
    # None: a new annotator is its own coder, an existing one keeps its coder.
    coder: str | None = None


def judge_config_hash(family: str, protocol: str, config: dict[str, Any]) -> str:
    """What a judge's verdicts depend on; a verdict is reused only under the same hash."""
    return config_hash({"family": family, "protocol": protocol, **config})


# pg_advisory_xact_lock(class, key): definitions of one judge name wait for each other. (The
# two-key space does not overlap the one-key locks of the migrations.)
_DEFINE_LOCK_CLASS = 0x4A444546  # "JDEF"


async def _upsert_annotator(
    conn: AsyncConnection[Any], name: str, kind: str, coder: str | None = None
) -> int:
    """An annotator's id; `coder` (default: the annotator's own name, for a new one) is the
    coder it is reported under. Without `coder` an existing annotator keeps its coder: adding
    annotations by "group-1" must not take it out of the "students" it was imported under."""
    cur = await conn.execute(
        "INSERT INTO judge.annotators (name, kind, coder) VALUES (%s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind,"
        " coder = CASE WHEN %s THEN EXCLUDED.coder ELSE annotators.coder END"
        " RETURNING id",
        (name, kind, coder or name, coder is not None),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _stored_unless_owned(
    conn: AsyncConnection[Any], name: str, digest: str, study: str
) -> JudgeRecord | None:
    """The stored judge when it has this very definition; None when `study` may define it;
    JudgeOwned when a built-in or another study's judge has the name."""
    cur = await conn.execute(
        "SELECT a.id, j.config_hash, j.study, j.builtin FROM judge.judges j"
        " JOIN judge.annotators a ON a.id = j.annotator_id WHERE a.name = %s",
        (name,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    annotator_id, stored, owner, builtin = int(row[0]), str(row[1]), row[2], row[3]
    if stored == digest:
        return JudgeRecord(annotator_id=annotator_id, config_hash=digest)
    if builtin:
        raise JudgeOwned(name, None)
    if owner is not None and owner != study:
        raise JudgeOwned(name, str(owner))
    return None


async def _store_judge(
    conn: AsyncConnection[Any],
    name: str,
    family: str,
    protocol: str,
    config: dict[str, Any],
    digest: str,
    study: str | None,
) -> int:
    """Upserts the judge; `study` None: a built-in judge."""
    annotator_id = await _upsert_annotator(conn, name, "model")
    await conn.execute(
        "INSERT INTO judge.judges"
        " (annotator_id, family, protocol, config, config_hash, study, builtin)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (annotator_id) DO UPDATE SET"
        " family = EXCLUDED.family, protocol = EXCLUDED.protocol,"
        " config = EXCLUDED.config, config_hash = EXCLUDED.config_hash,"
        " study = EXCLUDED.study, builtin = EXCLUDED.builtin, updated_at = now()",
        (annotator_id, family, protocol, Jsonb(config), digest, study, study is None),
    )
    return annotator_id


_UPSERT_JUDGMENT = (
    "INSERT INTO judge.judgments (generation_id, annotator_id, protocol,"
    " judge_config_hash, status, harmful, value, rank, raw_output, reason,"
    " prompt_tokens, completion_tokens, cost_usd, order_sensitive, details, answer_sha256)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (generation_id, annotator_id) DO UPDATE SET"
    " protocol = EXCLUDED.protocol, judge_config_hash = EXCLUDED.judge_config_hash,"
    " status = EXCLUDED.status, harmful = EXCLUDED.harmful, value = EXCLUDED.value,"
    " rank = EXCLUDED.rank, raw_output = EXCLUDED.raw_output,"
    " reason = EXCLUDED.reason, prompt_tokens = EXCLUDED.prompt_tokens,"
    " completion_tokens = EXCLUDED.completion_tokens, cost_usd = EXCLUDED.cost_usd,"
    " order_sensitive = EXCLUDED.order_sensitive, details = EXCLUDED.details,"
    " answer_sha256 = EXCLUDED.answer_sha256, created_at = now()"
)


def _judgment_row(annotator_id: int, digest: str, j: StoredJudgment) -> tuple[Any, ...]:
    """Parameters of _UPSERT_JUDGMENT for one label."""
    return (
        j.generation_id,
        annotator_id,
        j.protocol,
        digest,
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
        j.answer_sha256,
    )


class JudgeStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def answer_hashes(self, ids: Sequence[int]) -> dict[int, str]:
        """generation id -> sha256 of its current text, for the ids the generator stores."""
        async with self.pool.connection() as conn:
            try:
                cur = await conn.execute(
                    "SELECT generation_id, text_sha256 FROM generator.answers_v1"
                    " WHERE generation_id = ANY(%s)",
                    (list(ids),),
                )
            except psycopg.errors.UndefinedTable as exc:
                raise PublishedViewMissing(
                    "generator.answers_v1 does not exist: the generator service has not "
                    "started against this database yet, so no answer is stored"
                ) from exc
            return {int(r[0]): str(r[1]) for r in await cur.fetchall()}

    async def is_human(self, name: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM judge.annotators WHERE name = %s AND kind = 'human'", (name,)
            )
            return await cur.fetchone() is not None

    async def upsert_judge(
        self, name: str, family: str, protocol: str, config: dict[str, Any]
    ) -> JudgeRecord:
        """Stores a built-in judge (the service's own, at start-up): no study owns it."""
        digest = judge_config_hash(family, protocol, config)
        async with self.pool.connection() as conn, conn.transaction():
            annotator_id = await _store_judge(conn, name, family, protocol, config, digest, None)
        return JudgeRecord(annotator_id=annotator_id, config_hash=digest)

    async def define_judge(
        self, name: str, family: str, protocol: str, config: dict[str, Any], study: str
    ) -> JudgeRecord:
        """Stores a judge defined for `study` ('' for none). The same definition again changes
        nothing, whoever sends it; another one replaces the stored judge only for the study
        that defined it (or when none owns it): JudgeOwned otherwise."""
        digest = judge_config_hash(family, protocol, config)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_DEFINE_LOCK_CLASS, name)
            )
            if (same := await _stored_unless_owned(conn, name, digest, study)) is not None:
                return same
            annotator_id = await _store_judge(conn, name, family, protocol, config, digest, study)
        return JudgeRecord(annotator_id=annotator_id, config_hash=digest)

    async def check_definable(
        self, name: str, family: str, protocol: str, config: dict[str, Any], study: str
    ) -> None:
        """Raises JudgeOwned where define_judge would; stores nothing."""
        digest = judge_config_hash(family, protocol, config)
        async with self.pool.connection() as conn:
            await _stored_unless_owned(conn, name, digest, study)

    async def find_judgments(
        self, judge: JudgeRecord, generation_ids: Sequence[int]
    ) -> dict[int, StoredJudgment]:
        """Verdicts this judge, in its current configuration, already gave."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(StoredJudgment))
            await cur.execute(
                "SELECT generation_id, protocol, status, harmful, value, rank, raw_output, reason,"
                " prompt_tokens, completion_tokens, cost_usd, order_sensitive, details,"
                " answer_sha256 FROM judge.judgments"
                " WHERE annotator_id = %s AND judge_config_hash = %s"
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

    async def import_labels(
        self,
        labels: Sequence[ImportedLabel],
        *,
        replace_generation_ids: Sequence[int] = (),
        replace_protocol: str = "",
        overwrite: bool,
    ) -> tuple[int, int]:
        """Stores labels given elsewhere in one transaction: first deletes the labels of
        `replace_protocol` on `replace_generation_ids` (a data set imported again replaces
        its own labels). Returns (new, replaced) counts. Without `overwrite`, a label already
        stored for the same (annotator, answer) stores nothing: LabelsAlreadyStored."""
        names = sorted({lb.annotator for lb in labels})
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT a.name FROM judge.annotators a JOIN judge.judges j"
                " ON j.annotator_id = a.id WHERE a.name = ANY(%s)",
                (names,),
            )
            judges = [str(r[0]) for r in await cur.fetchall()]
            if judges:
                raise JudgeNameTaken(judges)
            if replace_generation_ids:
                await conn.execute(
                    "DELETE FROM judge.judgments WHERE protocol = %s AND generation_id = ANY(%s)",
                    (replace_protocol, list(replace_generation_ids)),
                )
            cur = await conn.execute(
                "SELECT a.name, j.generation_id FROM judge.judgments j"
                " JOIN judge.annotators a ON a.id = j.annotator_id"
                " WHERE a.name = ANY(%s) AND j.generation_id = ANY(%s)",
                (names, [lb.judgment.generation_id for lb in labels]),
            )
            existing = {(str(r[0]), int(r[1])) for r in await cur.fetchall()}
            clashes = [
                (lb.annotator, lb.judgment.generation_id)
                for lb in labels
                if (lb.annotator, lb.judgment.generation_id) in existing
            ]
            if clashes and not overwrite:
                raise LabelsAlreadyStored(clashes)
            ids: dict[str, int] = {}
            for lb in labels:
                if lb.annotator not in ids:
                    ids[lb.annotator] = await _upsert_annotator(
                        conn, lb.annotator, lb.annotator_kind, lb.coder
                    )
            async with conn.cursor() as c:
                await c.executemany(
                    _UPSERT_JUDGMENT,
                    [_judgment_row(ids[lb.annotator], "", lb.judgment) for lb in labels],
                )
        return len(labels) - len(clashes), len(clashes)

    async def count_rows(self, table: str) -> int:
        """Row count of one of this service's tables (tests show nothing was duplicated)."""
        return await count_rows(self.pool, SCHEMA, table)
