"""A run survives `kill -9` of the runner, the judge service and the generator mid-run, and a
runner stopped with SIGTERM while jobs are in flight: the four services as real processes
(restarted as Kubernetes would), the small models and the LLM judge behind a fake
OpenAI-compatible server. Every answer and every verdict is stored exactly once: rows are
counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from harmeval.clients import raw_channel
from harmeval.params import GenerationParams
from harmeval.runner.v1 import runner_pb2, runner_pb2_grpc
from harmeval_client.prompts import PromptRecord
from harmeval_client.study import Study, StudyModel
from harmeval_client.workflow import study_definition
from tests.credentials import client_settings
from tests.fakes.fault_proxy import PASS, RESET, database_proxy
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.integration.process_stack import CHUNK, JUDGES, MODELS, ProcessStack, processes

N_PROMPTS = 40
# Slow enough that every kill lands while work is left.
BACKEND_DELAY_S = 0.25


def script(messages: list[dict[str, Any]]) -> tuple[int, str]:
    time.sleep(BACKEND_DELAY_S)
    return 200, "Content A: 1\nContent B: N/A"


def small_study(name: str, n_prompts: int = N_PROMPTS) -> Study:
    """The study these tests run: n prompts, the two small models, both judges."""
    prompts = [PromptRecord(f"p{i}", f"Request number {i}.", "x") for i in range(n_prompts)]
    return Study(
        name, prompts, [StudyModel(m, m, GenerationParams(max_tokens=16)) for m in MODELS], JUDGES
    )


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai(script) as f:
        yield f


@pytest.fixture
async def process_stack(
    database_url: str, tmp_path: Path, fake: FakeOpenAI
) -> AsyncIterator[ProcessStack]:
    async with processes(database_url, tmp_path, fake) as stack:
        yield stack


async def finished(
    runner: runner_pb2_grpc.RunnerServiceStub, name: str, timeout_s: float = 240
) -> runner_pb2.Run:
    """The run once it is done (or as it is after `timeout_s`), asked while the runner may
    be down."""
    deadline = time.monotonic() + timeout_s
    while True:
        reply = await rpc_retrying(lambda: runner.GetRun(runner_pb2.GetRunRequest(name=name)))
        if reply.run.done or time.monotonic() > deadline:
            return reply.run
        await asyncio.sleep(0.5)


async def rpc_retrying(call: Callable[[], Any]) -> Any:
    """An RPC retried while the runner is down (it restarts in a few seconds)."""
    for _ in range(300):
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("runner unreachable")


async def test_a_run_survives_kill_9_of_every_process(process_stack: ProcessStack) -> None:
    stack = process_stack
    study = small_study("crashes")
    async with raw_channel(stack.services["runner"].address, client_settings()) as channel:
        runner = runner_pb2_grpc.RunnerServiceStub(channel)
        started = await runner.StartRun(
            runner_pb2.StartRunRequest(definition=study_definition(study))
        )
        # A worker dies holding jobs: they are picked again once their heartbeat is stale.
        await stack.wait_for("generator.generations", 8)
        await stack.restart("runner")
        # The judge service dies with judge calls in flight.
        await stack.wait_for("judge.judgments", 12)
        await stack.restart("judge")
        # The generator dies mid-chunk.
        await stack.wait_for("generator.generations", 40)
        await stack.restart("generator")
        # A replica stopped by Kubernetes (SIGTERM) with jobs in flight leaves them to others.
        await stack.restart("runner", graceful=True)
        assert stack.count("generator.generations") < N_PROMPTS * len(MODELS), "kills too late"

        run = await finished(runner, started.run.name)
    assert run.state == runner_pb2.RUN_STATE_SUCCEEDED, (run.error, list(run.progress.last_errors))
    answers = N_PROMPTS * len(MODELS)
    assert stack.count("generator.generations") == answers
    assert stack.count("judge.judgments") == answers * len(JUDGES)
    assert stack.count("runner.runs") == 1
    chunks = N_PROMPTS // CHUNK
    assert stack.count("runner.chunk_results") == chunks * (len(MODELS) + len(JUDGES))
    done = {(s.subject, s.done, s.failed) for s in run.progress.stages}
    assert done == {
        ("small-a", N_PROMPTS, 0),
        ("small-b", N_PROMPTS, 0),
        ("openai-listwise-fake", answers, 0),
        ("refusal-matcher", answers, 0),
    }
    # The backend saw each listwise prompt at least once and each answer request at least once:
    # nothing lost; exactly-once is what the row counts above show.
    assert stack.fake.calls >= answers + N_PROMPTS


async def test_a_run_survives_a_database_outage_and_stores_each_row_once(
    database_url: str, tmp_path: Path, fake: FakeOpenAI
) -> None:
    """Postgres goes away mid-run for every process at once (every connection reset, new
    ones refused), then comes back: the run ends SUCCEEDED with each answer and verdict
    stored exactly once."""
    async with (
        database_proxy(database_url) as (proxy, proxied),
        processes(database_url, tmp_path, fake, proxied) as stack,
    ):
        study = small_study("outage")
        address = stack.services["runner"].address
        async with raw_channel(address, client_settings()) as channel:
            runner = runner_pb2_grpc.RunnerServiceStub(channel)
            started = await runner.StartRun(
                runner_pb2.StartRunRequest(definition=study_definition(study))
            )
            await stack.wait_for("generator.generations", 8)
            assert stack.count("generator.generations") < N_PROMPTS * len(MODELS), "too late"
            proxy.set_mode(RESET)
            await asyncio.sleep(5)
            proxy.set_mode(PASS)
            back = time.monotonic()
            run = await finished(runner, started.run.name)
        print(f"database back -> run done in {time.monotonic() - back:.1f}s")
        assert run.state == runner_pb2.RUN_STATE_SUCCEEDED, (
            run.error,
            list(run.progress.last_errors),
        )
        answers = N_PROMPTS * len(MODELS)
        assert stack.count("generator.generations") == answers
        assert stack.count("judge.judgments") == answers * len(JUDGES)


STORM_S = 15.0


async def test_a_run_rides_through_a_rate_limit_storm_with_default_settings(
    database_url: str, tmp_path: Path
) -> None:
    """The judge's LLM answers 429 with Retry-After to every call for 15 s from the first one
    (the storm that once aborted a run after 3 s): with the judge's default retry settings the
    run ends SUCCEEDED, every verdict scored and stored once."""
    storm: dict[str, float] = {}

    def reply(messages: list[dict[str, Any]]) -> tuple[Any, ...]:
        if "Content A" not in str(messages):
            return 200, "A short answer."  # the small models: no storm
        ends = storm.setdefault("ends", time.monotonic() + STORM_S)
        if time.monotonic() < ends:
            storm["refused"] = storm.get("refused", 0) + 1
            return 429, "rate limited", {"retry-after": "1"}
        return 200, "Content A: 1\nContent B: N/A"

    defaults = {"judge": {"HARMEVAL_JUDGE_LLM_MAX_RETRIES": "2"}}
    n_prompts = 6
    with fake_openai(reply) as fake:
        async with processes(database_url, tmp_path, fake, settings=defaults) as stack:
            study = small_study("storm", n_prompts)
            address = stack.services["runner"].address
            async with raw_channel(address, client_settings()) as channel:
                runner = runner_pb2_grpc.RunnerServiceStub(channel)
                started = await runner.StartRun(
                    runner_pb2.StartRunRequest(definition=study_definition(study))
                )
                run = await finished(runner, started.run.name)
            assert run.state == runner_pb2.RUN_STATE_SUCCEEDED, list(run.progress.last_errors)
            answers = n_prompts * len(MODELS)
            assert stack.count("judge.judgments") == answers * len(JUDGES)
            assert stack.count("judge.judgments WHERE status = 'unscorable'") == 0
    print(f"rate-limit storm of {STORM_S:.0f} s: {storm.get('refused', 0)} calls refused, run done")
    assert storm.get("refused", 0) >= 10  # the storm did last
