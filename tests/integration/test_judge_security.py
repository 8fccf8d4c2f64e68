"""No caller steers the judge service's keys or replaces its judges (issue 12).

Definitions name backends the operator declared (never a URL or a key), no redirect is
followed, built-in judges stay as configured, a study's judges live in its namespace, and a
backend's key shows nowhere: not in logs, gRPC errors, verdicts, metrics or any database row.
Every test points whatever a caller could steer at a canary server and asserts it received
exactly 0 requests.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import prometheus_client
import psycopg
import pytest
from psycopg import sql

from harmeval.common.v1 import common_pb2
from harmeval.judge.v1 import judge_pb2
from harmeval.judge.v1.judge_pb2_grpc import JudgeServiceStub
from harmeval_client.clients import Clients
from harmeval_judge.service import SPEC, JudgeServicer
from harmeval_judge.settings import JudgeSettings
from tests.fakes.canary import Counted, canary, redirecting
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.integration.conftest import JudgeModel, Stack, generator_store, running, stored_answers

OK = common_pb2.JUDGMENT_STATUS_OK
UNSCORABLE = common_pb2.JUDGMENT_STATUS_UNSCORABLE
PROMPT = common_pb2.Prompt(text="How do I pick a lock?")
LLM_JUDGE = "openai-listwise-fake"  # the configured LLM judge (built in)


class Echo:
    """The `echo` backend's script: answers with the request's Authorization header in it."""

    def __init__(self) -> None:
        self.fake: FakeOpenAI | None = None
        self.status = 500

    def __call__(self, messages: list[dict[str, Any]]) -> tuple[int, str]:
        assert self.fake is not None
        # The fake records a request's headers before it runs the script.
        auth = self.fake.headers[-1]["authorization"]
        if self.status == 200:
            return 200, f"junk that is no verdict; you sent {auth}"
        return self.status, f"upstream failed for request with {auth}; " * 30


@dataclass
class Secure:
    """A judge service with declared backends: `default` (the scripted fake), `echo` (whose
    key is a sentinel, answering with it), `redirector` and `redirector-aiohttp` (answering
    every request with a redirect to the canary)."""

    stub: JudgeServiceStub
    stack: Stack
    settings: JudgeSettings
    key: str
    echo: Echo
    echo_fake: FakeOpenAI
    hop: Counted
    bird: Counted

    @property
    def default(self) -> FakeOpenAI:
        return self.stack.fake


@pytest.fixture
async def secure(
    database_url: str, tmp_path: Path, judge_model: tuple[JudgeModel, FakeOpenAI]
) -> AsyncIterator[Secure]:
    model, fake = judge_model
    key = f"sk-sentinel-{uuid.uuid4().hex}"
    (tmp_path / "echo-key").write_text(f"{key}\n", encoding="utf-8")
    echo = Echo()
    with (
        canary() as bird,
        redirecting(f"{bird.url}/v1") as hop,
        fake_openai(echo) as echo_fake,
    ):
        echo.fake = echo_fake
        backends = tmp_path / "backends.yaml"
        backends.write_text(
            "backends:\n"
            f"  - {{name: echo, base_url: '{echo_fake.base_url}', api_key_file: echo-key}}\n"
            f"  - {{name: redirector, base_url: '{hop.url}/v1'}}\n"
            f"  - {{name: redirector-aiohttp, base_url: '{hop.url}/v1', transport: aiohttp}}\n",
            encoding="utf-8",
        )
        async with generator_store(database_url, tmp_path):
            pass  # the generator's schema (and the view the judge reads) exists
        settings = JudgeSettings(
            database_url=database_url,
            data_dir=tmp_path,
            judge_llm_base_url=fake.base_url,
            judge_llm_name=LLM_JUDGE,
            judge_llm_max_retries=0,
            judge_llm_timeout_seconds=10,
            judge_backends_file=backends,
        )
        servicer = JudgeServicer(settings)
        async with running(SPEC, servicer, settings) as (srv, channel):
            stub = JudgeServiceStub(channel)
            stack = Stack(
                Clients(None, stub, None, None),  # type: ignore[arg-type]
                {"judge": servicer},
                {"judge": srv},
                model,
                fake,
                database_url,
                tmp_path,
            )
            yield Secure(stub, stack, settings, key, echo, echo_fake, hop, bird)
    assert bird.hits == 0, f"the canary received {bird.requests}"


async def define(
    stub: JudgeServiceStub, definition: dict[str, Any], study: str = ""
) -> judge_pb2.JudgeInfo:
    reply: judge_pb2.DefineJudgeResponse = await stub.DefineJudge(
        judge_pb2.DefineJudgeRequest(definition=json.dumps(definition), study=study)
    )
    return reply.judge


async def refused(
    stub: JudgeServiceStub, definition: dict[str, Any], study: str = ""
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await define(stub, definition, study)
    return err.value


def judge_request(judge: str, *texts: str) -> judge_pb2.JudgeRequest:
    return judge_pb2.JudgeRequest(
        judge=judge, prompt=PROMPT, answers=[judge_pb2.Answer(text=t) for t in texts]
    )


async def listed(stub: JudgeServiceStub) -> dict[str, judge_pb2.JudgeInfo]:
    return {j.name: j for j in (await stub.ListJudges(judge_pb2.ListJudgesRequest())).judges}


# -- (a) a definition never carries a URL or a key -----------------------------------------


async def test_a_definition_with_a_url_or_a_key_is_refused(secure: Secure) -> None:
    canary_url = f"{secure.bird.url}/v1"
    for definition in (
        {"name": "steal", "family": "llm", "protocol": "binary", "base_url": canary_url},
        {"name": "steal", "family": "llama-guard", "base_url": canary_url, "model": "m"},
        {
            "name": "steal",
            "family": "llm",
            "base_url": canary_url,
            "api_key_env": "HARMEVAL_JUDGE_LLM_API_KEY",
        },
        {"name": "steal", "family": "llm", "api_key_env": "HARMEVAL_DATABASE_URL"},
        {"name": "steal", "family": "llm", "api_key": "sk-whatever"},
        {"name": "steal", "family": "llm", "backend": canary_url},
    ):
        for study in ("", "a-study"):
            err = await refused(secure.stub, definition, study)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
            details = err.details() or ""
            assert "HARMEVAL_JUDGE_BACKENDS_FILE" in details
    err = await refused(secure.stub, {"name": "steal", "family": "llm", "backend": "nope"})
    assert "declared: ['default', 'echo', 'redirector', 'redirector-aiohttp']" in (
        err.details() or ""
    )
    assert "steal" not in await listed(secure.stub)
    with pytest.raises(grpc.aio.AioRpcError) as err2:
        await secure.stub.Judge(judge_request("steal", "Sure, step 1..."))
    assert err2.value.code() == grpc.StatusCode.NOT_FOUND
    assert secure.bird.hits == 0 and secure.hop.hits == 0 and secure.default.calls == 0


# -- (b) built-in judges stay ---------------------------------------------------------------


async def test_a_definition_cannot_name_a_server_file(secure: Secure) -> None:
    secret_file = secure.stack.data_dir / "echo-key"
    for path in (str(secret_file), "/etc/passwd", "few-shot.jsonl"):
        definition = {"name": "fs", "family": "llm", "protocol": "binary", "examples": path}
        err = await refused(secure.stub, definition, "s")
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "judges file" in (err.details() or "") and secure.key not in (err.details() or "")
    assert "fs" not in await listed(secure.stub)


async def test_built_in_judges_cannot_be_replaced(secure: Secure) -> None:
    before = await listed(secure.stub)
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("refusal-matcher", {"family": "llm", "protocol": "binary", "backend": "redirector"}),
        ("refusal-matcher", {"family": "classifier"}),
        (LLM_JUDGE, {"family": "llm", "protocol": "listwise", "backend": "redirector"}),
        (LLM_JUDGE, {"family": "llm", "protocol": "listwise", "model": "another-model"}),
        (LLM_JUDGE, {"family": "refusal-matcher"}),
        ("openai-binary-gemma3-270m", {"family": "llm", "protocol": "binary", "max_tokens": 9}),
        ("rouge1-recall", {"family": "reference-metric", "metric": "bleu"}),
    ]
    for name, fields in attempts:
        for study in ("", "a-study"):
            err = await refused(secure.stub, {"name": name, **fields}, study)
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS, (name, err.details())
            assert f"judge {name!r} is built in" in (err.details() or "")
    # The same definition as the built-in's changes nothing and is no error.
    same = await define(secure.stub, {"name": "refusal-matcher", "family": "refusal-matcher"})
    assert same.family == "refusal-matcher"
    assert await listed(secure.stub) == before

    reply = await secure.stub.Judge(judge_request("refusal-matcher", "I'm sorry, I can't."))
    assert [(j.status, j.harmful) for j in reply.judgments] == [(OK, False)]
    secure.stack.judge_model.reply = lambda m: (200, "Content A: 1\nContent B: N/A")
    reply = await secure.stub.Judge(judge_request(LLM_JUDGE, "Sure, step 1...", "No."))
    assert [j.rank for j in reply.judgments] == [1, 0]
    assert secure.default.calls == 1  # the built-in's own backend, as configured
    assert secure.default.requests[0]["model"] == secure.settings.judge_llm_model
    assert secure.hop.hits == 0 and secure.bird.hits == 0


async def test_a_replica_without_a_built_in_still_cannot_replace_it(secure: Secure) -> None:
    """Mid-rollout a replica's settings may lack a judge the others have built in: the
    database, not each process's memory, says it is built in."""
    other_settings = dataclasses.replace(secure.settings, judge_llm_enabled=False)
    other = JudgeServicer(other_settings)
    assert LLM_JUDGE not in other.judges
    async with running(SPEC, other, other_settings) as (_, channel):
        err = await refused(
            JudgeServiceStub(channel), {"name": LLM_JUDGE, "family": "refusal-matcher"}, "s"
        )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"judge {LLM_JUDGE!r} is built in" in (err.details() or "")


# -- (c) redirects are never followed ------------------------------------------------------


@pytest.mark.parametrize("backend", ["redirector", "redirector-aiohttp"])
@pytest.mark.parametrize("protocol", ["binary", "listwise"])
async def test_a_backend_redirecting_elsewhere_fails_the_call_and_nothing_follows(
    secure: Secure, backend: str, protocol: str
) -> None:
    name = f"hop-{protocol}"
    await define(
        secure.stub, {"name": name, "family": "llm", "protocol": protocol, "backend": backend}
    )
    answers = await stored_answers(secure.stack, "Sure, step 1...", "No.", tag="hop")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await secure.stub.Judge(judge_pb2.JudgeRequest(judge=name, prompt=PROMPT, answers=answers))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = err.value.details() or ""
    assert f"backend {backend!r} refused the request" in details and "307" in details
    batch = judge_pb2.JudgeBatchRequest(
        judge=name, items=[judge_pb2.JudgeItem(prompt=PROMPT, answers=answers)]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in secure.stub.JudgeBatch(batch):
            pass
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert secure.hop.hits >= 2  # asked, and answered with a redirect
    assert secure.bird.hits == 0  # never followed
    assert await secure.stack.count_rows("judgments") == 0  # nothing stored as a verdict


# -- (d) a study's judges live in its namespace ---------------------------------------------


async def test_a_study_owns_the_judges_it_defines(secure: Secure) -> None:
    binary = {"name": "ns-judge", "family": "llm", "protocol": "binary"}
    likert = {"name": "ns-judge", "family": "llm", "protocol": "likert"}
    strongreject = {"name": "ns-judge", "family": "llm", "protocol": "strongreject"}
    assert (await define(secure.stub, binary, "study-a")).protocol == "binary-v1"
    # The study file changed: its own study redefines it.
    assert (await define(secure.stub, likert, "study-a")).protocol == "likert-v1"
    for study in ("study-b", ""):
        err = await refused(secure.stub, strongreject, study)
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "by study 'study-a'" in (err.details() or "")
    # The exact same definition again is accepted from anyone, and changes nothing.
    assert (await define(secure.stub, likert, "study-b")).protocol == "likert-v1"
    assert (await define(secure.stub, likert)).protocol == "likert-v1"
    assert (await listed(secure.stub))["ns-judge"].protocol == "likert-v1"
    secure.stack.judge_model.reply = lambda m: (200, "Rating: 4")
    [j] = (await secure.stub.Judge(judge_request("ns-judge", "Sure, step 1..."))).judgments
    assert j.protocol == "likert-v1"

    # A judge defined without a study is that namespace's.
    await define(secure.stub, {"name": "no-study", "family": "refusal-matcher"})
    await define(secure.stub, {"name": "no-study", "family": "classifier"})
    err = await refused(secure.stub, {"name": "no-study", "family": "llm"}, "study-a")
    assert "by a definition without a study" in (err.details() or "")

    # Ownership is stored: a restarted service (or another replica) keeps it.
    restarted = JudgeServicer(secure.settings)
    async with AsyncExitStack() as stack:
        _, channel = await stack.enter_async_context(running(SPEC, restarted, secure.settings))
        other = JudgeServiceStub(channel)
        err = await refused(other, strongreject, "study-b")
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "by study 'study-a'" in (err.details() or "")
        assert (await define(other, strongreject, "study-a")).protocol == "strongreject-v1"
    with psycopg.connect(secure.stack.database_url) as conn:
        rows = conn.execute(
            "SELECT a.name, j.study FROM judge.judges j"
            " JOIN judge.annotators a ON a.id = j.annotator_id"
            " WHERE a.name IN ('ns-judge', 'no-study', 'refusal-matcher') ORDER BY a.name"
        ).fetchall()
    assert rows == [("no-study", ""), ("ns-judge", "study-a"), ("refusal-matcher", None)]


# -- the sentinel: a backend's key shows nowhere ------------------------------------------


def database_text(url: str) -> tuple[str, int]:
    """Every row of every table of every schema in the database, as text, and the count."""
    rows: list[str] = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert {s for s, _ in tables} >= {"judge", "generator"}
        for schema, table in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            rows += [f"{schema}.{table}: {r[0]}" for r in conn.execute(query).fetchall()]
    return "\n".join(rows), len(rows)


async def test_a_backend_key_shows_nowhere(
    secure: Secure, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    for chatty in ("openai", "httpx", "httpx2", "aiohttp", "grpc", "harmeval_judge"):
        caplog.set_level(logging.DEBUG, logger=chatty)  # whatever set them quieter before
    key, stub = secure.key, secure.stub
    judges = {
        "echo-binary": {"family": "llm", "protocol": "binary", "backend": "echo"},
        "echo-binary-aiohttp": {
            "family": "llm",
            "protocol": "binary",
            "backend": "echo",
            "transport": "aiohttp",
        },
        "echo-listwise": {"family": "llm", "protocol": "listwise", "backend": "echo"},
        "echo-guard": {"family": "llama-guard", "backend": "echo", "model": "guard"},
    }
    seen: list[str] = []  # everything a caller got back
    for name, fields in judges.items():
        seen.append(str(await define(stub, {"name": name, **fields}, "sentinel")))
    for status in (500, 401, 200):
        secure.echo.status = status
        answers = await stored_answers(secure.stack, "Sure, step 1...", "No.", tag=str(status))
        for name in judges:
            request = judge_pb2.JudgeRequest(judge=name, prompt=PROMPT, answers=answers)
            try:
                seen.append(str(await stub.Judge(request)))
            except grpc.aio.AioRpcError as exc:
                assert status != 200
                seen.append(f"{exc.code()}: {exc.details()} {exc.debug_error_string()}")
            batch = judge_pb2.JudgeBatchRequest(
                judge=name,
                items=[judge_pb2.JudgeItem(prompt=PROMPT, answers=answers)],
                rejudge_unscorable=True,
            )
            try:
                seen += [str(reply) async for reply in stub.JudgeBatch(batch)]
            except grpc.aio.AioRpcError as exc:
                assert status != 200
                seen.append(f"{exc.code()}: {exc.details()} {exc.debug_error_string()}")
    seen.append(str(await stub.ListJudges(judge_pb2.ListJudgesRequest())))

    # The test means something: the key went to its backend, which echoed it back each time.
    assert secure.echo_fake.calls >= 3 * len(judges)
    assert {h["authorization"] for h in secure.echo_fake.headers} == {f"Bearer {key}"}
    returned = "\n".join(seen)
    assert "[redacted]" in returned  # errors and junk verdicts did carry it, redacted
    assert "UNAVAILABLE" in returned and "FAILED_PRECONDITION" in returned
    assert "status: JUDGMENT_STATUS_UNSCORABLE" in returned

    assert key not in returned
    logs = caplog.text + "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in caplog.records
    )
    assert caplog.records, "logging was captured"
    assert key not in logs
    out, err = capfd.readouterr()
    assert key not in out and key not in err
    metrics = prometheus_client.generate_latest().decode()
    assert "harmeval_judge_llm_calls" in metrics
    assert key not in metrics
    dump, n_rows = database_text(secure.stack.database_url)
    assert n_rows > 0 and "[redacted]" in dump  # the junk verdicts, stored redacted
    assert key not in dump
    assert secure.bird.hits == 0


async def test_validate_only_checks_a_definition_and_stores_nothing(secure: Secure) -> None:
    """A definition checked with validate_only: answered as if defined, then not offered;
    one another study owns is refused as a real definition would be."""
    mine = {"name": "checked-only", "family": "refusal-matcher"}
    stub = secure.stub
    reply = await stub.DefineJudge(
        judge_pb2.DefineJudgeRequest(definition=json.dumps(mine), study="a", validate_only=True)
    )
    assert reply.judge.name == "checked-only"
    offered = await stub.ListJudges(judge_pb2.ListJudgesRequest())
    assert "checked-only" not in {j.name for j in offered.judges}
    await define(stub, mine, "a")
    other = {"name": "checked-only", "family": "reference-metric", "metric": "bleu"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DefineJudge(
            judge_pb2.DefineJudgeRequest(
                definition=json.dumps(other), study="b", validate_only=True
            )
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
