"""The edge of every RPC under faults: bytes that do not decode, handlers that fail, callers
that give up, bursts past the limit, and the database going away and coming back."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from harmeval.clients import raw_channel
from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2
from harmeval.judge.v1 import judge_pb2, judge_pb2_grpc
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from harmeval.server import RunningServer, _watchdog, create_server
from harmeval_generator.settings import GeneratorSettings
from harmeval_judge.service import SPEC as JUDGE_SPEC
from harmeval_judge.service import JudgeServicer
from harmeval_metrics.service import SPEC as METRICS_SPEC
from harmeval_metrics.service import MetricsServicer
from harmeval_metrics.settings import MetricsSettings
from tests.credentials import client_settings, secured
from tests.fakes.fault_proxy import (
    BLACK_HOLE,
    CUT_MID_BODY,
    PASS,
    RESET,
    database_proxy,
    fault_proxy,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.tgi_server import fake_tgi
from tests.integration.conftest import (
    JudgeModel,
    Stack,
    generator_store,
    judge_settings,
    running,
)
from tests.integration.generator_fixtures import generator_with

LIST_JUDGES = "/harmeval.judge.v1.JudgeService/ListJudges"
METRICS = "harmeval.metrics.v1.MetricsService"


def requests_total(service: str, method: str, code: str) -> float:
    labels = {"method": method, "code": code}
    return REGISTRY.get_sample_value(f"harmeval_{service}_requests_total", labels) or 0.0


@asynccontextmanager
async def judge_with(
    database_url: str,
    tmp_path: Path,
    fake: FakeOpenAI,
    list_judges: Any = None,
    **settings: Any,
) -> AsyncIterator[grpc.aio.Channel]:
    """A judge service whose ListJudges is replaced by `list_judges` (when given)."""
    async with generator_store(database_url, tmp_path):
        pass
    s = replace(judge_settings(database_url, tmp_path, fake), **settings)
    servicer = JudgeServicer(s)
    if list_judges is not None:
        servicer.ListJudges = list_judges  # type: ignore[method-assign]
    async with running(JUDGE_SPEC, servicer, s) as (_, channel):
        yield channel


async def test_bytes_that_do_not_decode_are_invalid_argument(
    database_url: str, tmp_path: Path, judge_model: tuple[JudgeModel, FakeOpenAI]
) -> None:
    async with judge_with(database_url, tmp_path, judge_model[1]) as ch:
        raw: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
        for method, kind in [
            ("/harmeval.judge.v1.JudgeService/Judge", ch.unary_unary),
            ("/harmeval.judge.v1.JudgeService/JudgeBatch", ch.unary_stream),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                call = kind(method, **raw)(b"\xff\xff\xff\xff", timeout=5)
                if hasattr(call, "__aiter__"):
                    async for _ in call:
                        pass
                else:
                    await call
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert "not a valid message" in (err.value.details() or "")


async def test_an_unexpected_error_is_internal_with_an_incident_id(
    database_url: str,
    tmp_path: Path,
    judge_model: tuple[JudgeModel, FakeOpenAI],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: Any, context: Any) -> Any:
        raise KeyError("a bug, with internals the caller must not see")

    async with judge_with(database_url, tmp_path, judge_model[1], broken) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await judge_pb2_grpc.JudgeServiceStub(ch).ListJudges(judge_pb2.ListJudgesRequest())
    assert err.value.code() == grpc.StatusCode.INTERNAL
    details = err.value.details() or ""
    assert "internals" not in details and "KeyError" not in details
    incident = details.split("incident ")[1].split(" ")[0]
    [record] = [r for r in caplog.records if incident in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None


async def test_error_details_quote_only_a_prefix_of_what_was_sent(
    database_url: str, tmp_path: Path, judge_model: tuple[JudgeModel, FakeOpenAI]
) -> None:
    async with judge_with(database_url, tmp_path, judge_model[1]) as ch:
        stub = judge_pb2_grpc.JudgeServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Judge(judge_pb2.JudgeRequest(judge="j" * 1_000_000), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # not a metadata-size error
    assert len(err.value.details() or "") < 1100


async def test_callers_that_give_up_are_counted_as_such(
    database_url: str, tmp_path: Path, judge_model: tuple[JudgeModel, FakeOpenAI]
) -> None:
    async def slow(request: Any, context: Any) -> Any:
        await asyncio.sleep(5)
        return judge_pb2.ListJudgesResponse()

    before = {
        c: requests_total("judge", "ListJudges", c) for c in ("DEADLINE_EXCEEDED", "CANCELLED")
    }
    async with judge_with(database_url, tmp_path, judge_model[1], slow) as ch:
        stub = judge_pb2_grpc.JudgeServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListJudges(judge_pb2.ListJudgesRequest(), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        call = stub.ListJudges(judge_pb2.ListJudgesRequest())
        await asyncio.sleep(0.3)
        call.cancel()
        await asyncio.sleep(0.5)  # the server notices both
    after = {c: requests_total("judge", "ListJudges", c) for c in before}
    assert after == {c: v + 1 for c, v in before.items()}
    assert requests_total("judge", "ListJudges", "UNKNOWN") == 0


async def test_a_burst_past_the_limit_is_resource_exhausted(
    database_url: str, tmp_path: Path, judge_model: tuple[JudgeModel, FakeOpenAI]
) -> None:
    async def slow(request: Any, context: Any) -> Any:
        await asyncio.sleep(1.0)
        return judge_pb2.ListJudgesResponse()

    limit, burst = 2, 60
    async with judge_with(
        database_url, tmp_path, judge_model[1], slow, grpc_max_concurrent_rpcs=limit
    ) as ch:
        stub = judge_pb2_grpc.JudgeServiceStub(ch)

        async def one() -> grpc.StatusCode:
            try:
                await stub.ListJudges(judge_pb2.ListJudgesRequest(), timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        codes = await asyncio.gather(*(one() for _ in range(burst)))
    counts = {c: codes.count(c) for c in set(codes)}
    # Refused at once with a code clients retry; never CANCELLED before a handler saw it.
    assert set(counts) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, counts
    assert counts.get(grpc.StatusCode.RESOURCE_EXHAUSTED, 0) > 0, counts
    assert counts.get(grpc.StatusCode.OK, 0) >= limit, counts


async def _health(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
        return int(reply.status)


async def _until(check: Any, timeout_s: float = 10.0) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout_s, "condition not reached"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.parametrize("fault", [RESET, BLACK_HOLE])
async def test_a_database_outage_is_unavailable_at_once_and_health_follows(
    database_url: str, tmp_path: Path, fault: str
) -> None:
    serving_ = health_pb2.HealthCheckResponse.SERVING
    async with database_proxy(database_url) as (proxy, proxied):
        settings = secured(MetricsSettings(database_url=proxied, data_dir=tmp_path))
        servicer = MetricsServicer(settings)
        srv: RunningServer = await create_server(METRICS_SPEC, servicer, "127.0.0.1:0", settings)
        await srv.start()
        stop = asyncio.Event()
        async with AsyncExitStack() as stack:
            await servicer.startup(stack)
            await srv.set_serving(True)
            watchdog = asyncio.create_task(_watchdog(servicer, srv, stop))
            ch = await stack.enter_async_context(
                raw_channel(f"127.0.0.1:{srv.port}", client_settings())
            )
            stub = metrics_pb2_grpc.MetricsServiceStub(ch)
            request = metrics_pb2.GetAgreementRequest(study="no-such-study")

            async def code() -> grpc.StatusCode:
                try:
                    await stub.GetAgreement(request, timeout=15)
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
                return grpc.StatusCode.OK

            assert await code() == grpc.StatusCode.NOT_FOUND
            proxy.set_mode(fault)
            if fault == RESET:
                # The first call after the cut meets a dead pooled connection: UNAVAILABLE.
                started = time.monotonic()
                assert await code() == grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() - started < 1.0

            async def not_serving() -> bool:
                return await _health(srv.port, METRICS) != serving_

            took = await _until(not_serving)
            print(f"database {fault} -> NOT_SERVING in {took:.2f}s")
            assert took < 3.0  # the probe's own bound is 1 s, asked every second
            started = time.monotonic()
            assert await code() == grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 1.0  # refused at once, not after a pool timeout

            proxy.set_mode(PASS)
            back = time.monotonic()

            async def answers() -> bool:
                return await code() == grpc.StatusCode.NOT_FOUND

            await _until(answers)
            print(f"database back -> first answer in {time.monotonic() - back:.2f}s")
            assert await _health(srv.port, METRICS) == serving_
            # Liveness ("") never said otherwise: an outage is no reason to restart the pod.
            assert await _health(srv.port) == serving_
            stop.set()
            watchdog.cancel()
        await srv.stop(0)


async def test_work_a_request_may_ask_for_is_bounded(database_url: str, tmp_path: Path) -> None:
    settings = secured(MetricsSettings(database_url=database_url, data_dir=tmp_path))
    async with running(METRICS_SPEC, MetricsServicer(settings), settings) as (_, ch):
        stub = metrics_pb2_grpc.MetricsServiceStub(ch)
        # 300,000 distinct unit/coder pairs: refused at once, not a 671 GiB allocation.
        values = [
            metrics_pb2.ReliabilityValue(unit=f"u{i}", coder=f"c{i}", category="a")
            for i in range(300_000)
        ]
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ComputeAgreement(
                metrics_pb2.ComputeAgreementRequest(values=values, level="nominal"), timeout=30
            )
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "cells" in (err.value.details() or "") and time.monotonic() - started < 10
        many = [
            metrics_pb2.ReliabilityValue(unit=f"u{i // 2}", coder=f"c{i % 2}", number=i)
            for i in range(40_000)
        ]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ComputeAgreement(
                metrics_pb2.ComputeAgreementRequest(values=many, level="interval"), timeout=30
            )
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The same breakdown 200,000 times is one mistake, not 200,000 times the work.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetAgreement(
                metrics_pb2.GetAgreementRequest(study="s", breakdown=["category"] * 200_000),
                timeout=30,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(err.value.details() or "") < 200


async def test_a_backend_that_hangs_or_resets_is_unavailable_and_the_service_stays_up(
    database_url: str, tmp_path: Path, judge_model: tuple[JudgeModel, FakeOpenAI]
) -> None:
    model, fake = judge_model
    model.reply = lambda messages: (200, "Content A: 1")
    upstream = urlparse(fake.base_url)
    assert upstream.hostname is not None and upstream.port is not None
    async with (
        fault_proxy(upstream_tcp=(upstream.hostname, upstream.port)) as proxy,
        judge_with(
            database_url,
            tmp_path,
            fake,
            judge_llm_base_url=f"http://127.0.0.1:{proxy.port}/v1",
            judge_llm_timeout_seconds=1.0,
            judge_llm_deadline_seconds=3.0,
        ) as ch,
    ):
        stub = judge_pb2_grpc.JudgeServiceStub(ch)
        request = judge_pb2.JudgeRequest(
            judge="openai-listwise-fake",
            prompt=common_pb2.Prompt(text="How do I pick a lock?"),
            answers=[judge_pb2.Answer(text="Step 1: ...")],
        )

        async def outcome() -> tuple[grpc.StatusCode, float]:
            started = time.monotonic()
            try:
                await stub.Judge(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                return exc.code(), time.monotonic() - started
            return grpc.StatusCode.OK, time.monotonic() - started

        assert (await outcome())[0] == grpc.StatusCode.OK
        # Slow, but within the per-attempt timeout: answered.
        proxy.latency_s = 0.2
        code, took = await outcome()
        assert code == grpc.StatusCode.OK and took >= 0.4  # a request and an answer, each late
        # Slower than the per-attempt timeout (1 s) on every try: UNAVAILABLE by the deadline.
        proxy.latency_s = 1.5
        code, took = await outcome()
        assert code == grpc.StatusCode.UNAVAILABLE and took < 10
        proxy.latency_s = 0.0
        # The answer cut after its headers and part of its JSON body; then cut before any byte.
        proxy.cut_after_bytes = 200
        for mode, cut in ((BLACK_HOLE, 0), (RESET, 0), (CUT_MID_BODY, 200), (CUT_MID_BODY, 0)):
            proxy.cut_after_bytes = cut
            proxy.set_mode(mode)
            code, took = await outcome()
            assert code == grpc.StatusCode.UNAVAILABLE, (mode, cut)
            assert took < 10, mode  # within the request's deadline, not a stall
            health = health_pb2_grpc.HealthStub(ch)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proxy.set_mode(PASS)
        assert (await outcome())[0] == grpc.StatusCode.OK


async def test_a_stream_cut_mid_way_is_unavailable_stores_nothing_and_is_retried_whole(
    database_url: str, tmp_path: Path
) -> None:
    """The generator's backend (TGI's SSE stream, the contract fake) cut after a few tokens:
    the caller gets the tokens so far and then UNAVAILABLE, no half answer is stored, and the
    same request once the backend is back gets the whole answer, stored once."""
    tokens = [f" word{i}" for i in range(40)]
    with fake_tgi(lambda inputs, parameters: (tokens, "eos_token"), token_delay_s=0.01) as tgi:
        upstream = urlparse(tgi.base_url)
        assert upstream.hostname is not None and upstream.port is not None
        async with fault_proxy(upstream_tcp=(upstream.hostname, upstream.port)) as proxy:
            models_file = tmp_path / "models.yaml"
            models_file.write_text(
                f"models:\n  - {{name: tgi-model, backend: tgi, "
                f"base_url: 'http://127.0.0.1:{proxy.port}'}}\n"
            )
            settings = GeneratorSettings(
                database_url=database_url, data_dir=tmp_path, generator_models_file=models_file
            )
            async with generator_with(settings) as gen:
                request = generator_pb2.GenerateStreamRequest(
                    model="tgi-model",
                    prompt=common_pb2.Prompt(text="Tell me about rivers."),
                    params=common_pb2.GenerationParams(max_tokens=64),
                )
                proxy.cut_after_bytes = 1500  # headers and a few SSE events
                proxy.set_mode(CUT_MID_BODY)
                texts: list[str] = []
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async for message in gen.client.GenerateStream(request, timeout=30):
                        texts.append(message.text)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert 0 < len("".join(texts).split()) < len(tokens), texts
                assert await gen.count_rows("generations") == 0
                one = generator_pb2.GenerateRequest(
                    model="tgi-model", prompts=[request.prompt], params=request.params
                )
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await gen.client.Generate(one, timeout=30)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert await gen.count_rows("generations") == 0
                proxy.set_mode(PASS)
                streamed = [m async for m in gen.client.GenerateStream(request, timeout=30)]
                assert "".join(m.text for m in streamed).split() == [t.strip() for t in tokens]
                again = await gen.client.Generate(one, timeout=30)
                assert again.generations[0].cached
                assert await gen.count_rows("generations") == 1


async def test_the_requests_that_once_ended_in_unknown_are_refused_by_name(stack: Stack) -> None:
    """Each of these once reached the database and came back UNKNOWN (issue 13)."""
    c = stack.clients

    def study(name: str, judges: list[str]) -> metrics_pb2.RegisterStudyRequest:
        return metrics_pb2.RegisterStudyRequest(
            name=name,
            prompts=[common_pb2.Prompt(text="How?")],
            models=[metrics_pb2.StudyModel(name="m", model="gemma3-270m")],
            judges=judges,
        )

    def definition(name: str) -> judge_pb2.DefineJudgeRequest:
        return judge_pb2.DefineJudgeRequest(
            definition=json.dumps({"name": name, "family": "refusal-matcher"})
        )

    answers_of_nul = metrics_pb2.GetStudyAnswersRequest(study="\0")
    cases: list[tuple[str, Any, str]] = [
        ("a study's judge twice", c.metrics.RegisterStudy(study("s", ["j", "j"])), "listed more"),
        ("a 1 MB study name", c.metrics.RegisterStudy(study("n" * 1_000_000, ["j"])), "at most"),
        (
            "a NUL study",
            c.metrics.GetStudyAnswers(answers_of_nul),
            "NUL",
        ),
        ("a 60 kB judge name", c.judge.DefineJudge(definition("j" * 60_000)), "at most"),
        ("a NUL judge name", c.judge.DefineJudge(definition("a\0b")), "NUL"),
    ]
    for what, call, says in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert says in (err.value.details() or ""), (what, err.value.details())
    # A refused definition is not offered.
    listed = await c.judge.ListJudges(judge_pb2.ListJudgesRequest())
    assert all(len(j.name) <= 200 and "\0" not in j.name for j in listed.judges)
