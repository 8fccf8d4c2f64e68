"""Health answers within 100 ms while each hostile request is in flight, measured against the
services as processes of their own (in-process servers would share the test's GIL, and the
figure would be the test's own)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harmeval.clients import raw_channel
from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc
from harmeval.judge.v1 import judge_pb2, judge_pb2_grpc
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from tests.credentials import client_settings
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.integration.process_stack import processes
from tests.integration.test_fuzz import YAML_BOMB

HEALTH_BOUND_S = 0.100
POLL_EVERY_S = 0.010
ATTEMPTS = 3
STUBS = {
    "generator": generator_pb2_grpc.GeneratorServiceStub,
    "judge": judge_pb2_grpc.JudgeServiceStub,
    "metrics": metrics_pb2_grpc.MetricsServiceStub,
}


def _definition(text: str) -> judge_pb2.DefineJudgeRequest:
    return judge_pb2.DefineJudgeRequest(definition=text)


def _hostile() -> list[tuple[str, str, Callable[[Any], Any]]]:
    """(what, service, call) for the requests that once stalled a service or cost the most."""
    values = [
        metrics_pb2.ReliabilityValue(unit=f"u{i}", coder=f"c{i}", category="a")
        for i in range(300_000)
    ]
    agreement = metrics_pb2.ComputeAgreementRequest(values=values, level="nominal")
    walked = metrics_pb2.ComputeAgreementRequest(
        values=[*values[:200_000], metrics_pb2.ReliabilityValue(unit="u", coder="c\0")],
        level="nominal",
    )
    long_answer = judge_pb2.JudgeRequest(
        judge="refusal-matcher",
        prompt=common_pb2.Prompt(text="How?"),
        answers=[judge_pb2.Answer(text="I can't help with that. " * 150_000)],
    )
    return [
        ("a YAML alias bomb", "judge", lambda s: s.DefineJudge(_definition(YAML_BOMB))),
        ("JSON nested 100,000 deep", "judge", lambda s: s.DefineJudge(_definition("[" * 100_000))),
        (
            "a 64 kB definition",
            "judge",
            lambda s: s.DefineJudge(
                _definition(json.dumps({"name": "big", "family": "llm", "x": "y" * 65_000}))
            ),
        ),
        ("a 3.6 MB answer to judge", "judge", lambda s: s.Judge(long_answer)),
        ("300,000 unit/coder pairs", "metrics", lambda s: s.ComputeAgreement(agreement)),
        ("200,000 values walked for a NUL", "metrics", lambda s: s.ComputeAgreement(walked)),
        (
            "a breakdown repeated 200,000 times",
            "metrics",
            lambda s: s.GetAgreement(
                metrics_pb2.GetAgreementRequest(study="s", breakdown=["category"] * 200_000)
            ),
        ),
        (
            "a 1 MB study name",
            "metrics",
            lambda s: s.GetStudyAnswers(metrics_pb2.GetStudyAnswersRequest(study="n" * 1_000_000)),
        ),
        (
            "a 1 MB prompt",
            "generator",
            lambda s: s.Generate(
                generator_pb2.GenerateRequest(
                    model="small-a", prompts=[common_pb2.Prompt(text="word " * 200_000)]
                )
            ),
        ),
    ]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai(lambda messages: (200, "Content A: 1")) as f:
        yield f


async def _during(call: Any, health: Any, service: str) -> tuple[grpc.StatusCode, list[float]]:
    """The call's code and the latency of every health check made while it was in flight."""
    latencies: list[float] = []
    task = asyncio.ensure_future(call)
    while not task.done():
        started = time.perf_counter()
        await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(POLL_EVERY_S)
    try:
        await task
    except grpc.aio.AioRpcError as exc:
        return exc.code(), latencies
    return grpc.StatusCode.OK, latencies


async def test_health_answers_within_100_ms_while_hostile_requests_are_in_flight(
    database_url: str, tmp_path: Path, fake: FakeOpenAI
) -> None:
    hostile = _hostile()
    async with processes(database_url, tmp_path, fake) as stack:
        rows = []
        for what, name, make_call in hostile:
            address = stack.services[name].address
            full_name = STUBS[name].__name__.removesuffix("Stub")
            async with (
                raw_channel(address, client_settings()) as channel,
                grpc.aio.insecure_channel(address) as health_channel,
            ):
                health = health_pb2_grpc.HealthStub(health_channel)
                await health.Check(health_pb2.HealthCheckRequest(), timeout=5)  # connected
                # A handler that blocks the event loop is late every time; a check late once
                # on a loaded 2-core machine (another process had the CPU) is measured again.
                for _ in range(ATTEMPTS):
                    code, latencies = await _during(
                        make_call(STUBS[name](channel)), health, f"harmeval.{name}.v1.{full_name}"
                    )
                    if max(latencies, default=0.0) < HEALTH_BOUND_S:
                        break
            rows.append((what, code, len(latencies), max(latencies, default=0.0)))
        for what, code, checks, longest in rows:
            print(f"{what:38} {code.name:18} {checks:4} checks, longest {longest * 1000:6.1f} ms")
        for what, code, _, longest in rows:
            assert code in {
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.OK,
            }, (what, code)
            assert longest < HEALTH_BOUND_S, (what, longest)
        for service in stack.services.values():
            assert service.proc is not None and service.proc.poll() is None
