"""The four services run under the least-privilege roles the README documents: each may
write only its own schema and read only the views the others publish. A service that touched
another's table would fail here with "permission denied"."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from harmeval.db.connection import migrate
from harmeval.metrics.v1 import metrics_pb2
from harmeval_client.study import Study
from harmeval_client.workflow import run_study
from harmeval_generator.store import SCHEMA as GENERATOR
from harmeval_judge.store import SCHEMA as JUDGE
from harmeval_metrics.store import SCHEMA as METRICS
from harmeval_runner.store import SCHEMA as RUNNER
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.conftest import JudgeModel, Stack, all_services
from tests.integration.test_study_flow import STUDY

SERVICES = ("generator", "judge", "metrics", "runner")


def role_url(url: str, role: str) -> str:
    # pgserver's URLs are postgresql://postgres:@/DB?host=SOCKET (trust on its socket).
    return url.replace("postgresql://postgres:@", f"postgresql://{role}:@", 1)


@pytest.fixture
def role_urls(pg_server: Any, database_url: str) -> dict[str, str]:
    """One login role per service owning a schema of the service's name, as documented."""
    suffix = uuid.uuid4().hex[:8]
    roles = {s: f"harmeval_{s}_{suffix}" for s in SERVICES}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for service, role in roles.items():
            conn.execute(f"CREATE ROLE {role} LOGIN")
            conn.execute(f"CREATE SCHEMA {service} AUTHORIZATION {role}")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    return {s: role_url(database_url, r) for s, r in roles.items()}


@pytest.fixture
async def role_stack(
    role_urls: dict[str, str],
    model_path: Path,
    tmp_path: Path,
    judge_model: tuple[JudgeModel, FakeOpenAI],
) -> AsyncIterator[Stack]:
    model, fake = judge_model
    async with all_services(role_urls, model_path, tmp_path, model, fake) as s:
        yield s


async def test_a_study_imports_and_reports_under_least_privilege(role_stack: Stack) -> None:
    stack = role_stack
    stack.judge_model.reply = lambda m: (200, "Content A: 1\nContent B: N/A")
    study = Study(name="roles", prompts=STUDY.prompts, models=STUDY.models, judges=STUDY.judges)
    summary = await run_study(study, stack.clients)
    assert summary.generations == {"new": 6} and summary.judgments["new"] == 18

    answers = await stack.clients.metrics.GetStudyAnswers(
        metrics_pb2.GetStudyAnswersRequest(study="roles")
    )
    rows = [
        metrics_pb2.AnnotationRow(
            prompt=p.prompt.external_id, model=a.model, annotator="ann", rank=1
        )
        for p in answers.prompts
        for a in p.answers[:1]
    ]
    imported = await stack.clients.metrics.ImportAnnotations(
        metrics_pb2.ImportAnnotationsRequest(study="roles", rows=rows)
    )
    assert imported.n_imported == 3
    agreement = await stack.clients.metrics.GetAgreement(
        metrics_pb2.GetAgreementRequest(study="roles")
    )
    assert {c.coder for c in agreement.coverage} >= {"ann", "refusal-matcher"}


def test_a_role_cannot_read_another_services_tables(role_urls: dict[str, str]) -> None:
    """The grants themselves: published views yes, tables no (checked after the services
    created their schemas)."""
    # Create every schema as its owner would.

    async def create() -> None:
        for schema in (GENERATOR, JUDGE, METRICS, RUNNER):
            async with AsyncConnectionPool(
                role_urls[schema.name], open=False, kwargs={"autocommit": True}
            ) as pool:
                await migrate(pool, schema)

    asyncio.run(create())
    with psycopg.connect(role_urls["judge"], autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM generator.answers_v1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM generator.generations")
    with psycopg.connect(role_urls["metrics"], autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM judge.labels_v1")
        for table in ("judge.judgments", "generator.prompts"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {table}")
        # prompts_v1 is an updatable view: only the missing grant stops this.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM generator.prompts_v1")
    with psycopg.connect(role_urls["runner"], autocommit=True) as conn:
        # The runner reads nobody's tables: it works through the services' RPCs.
        for table in ("generator.generations", "judge.judgments", "metrics.studies"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {table}")
    with psycopg.connect(role_urls["metrics"], autocommit=True) as conn:
        for table in ("runner.runs", "runner.chunk_results"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {table}")
        # (and once more the updatable view, from this connection)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM generator.prompts_v1")
