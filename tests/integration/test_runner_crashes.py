"""A run survives `kill -9` of the runner, the judge service and the generator mid-run, and a
runner stopped with SIGTERM while jobs are in flight: the four services as real processes
(restarted as Kubernetes would), the small models and the LLM judge behind a fake
OpenAI-compatible server. Every answer and every verdict is stored exactly once: rows are
counted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest

from harmeval.clients import health_status, raw_channel
from harmeval.params import GenerationParams
from harmeval.runner.v1 import runner_pb2, runner_pb2_grpc
from harmeval_client.prompts import PromptRecord
from harmeval_client.study import Study, StudyModel
from harmeval_client.workflow import study_definition
from tests.conftest import free_ports
from tests.credentials import OPERATOR_TOKEN, TOKENS_FILE, client_settings
from tests.fakes.fault_proxy import PASS, RESET, database_proxy
from tests.fakes.openai_server import FakeOpenAI, fake_openai

N_PROMPTS = 40
CHUNK = 2
MODELS = ["small-a", "small-b"]
JUDGES = ["openai-listwise-fake", "refusal-matcher"]
# Slow enough that every kill lands while work is left.
BACKEND_DELAY_S = 0.25


@dataclass
class Service:
    """One service as a child process: started, killed with SIGKILL, started again."""

    name: str
    env: dict[str, str]
    address: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"harmeval_{self.name}"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
            if await health_status(self.address, deadline_s=1.0) == "SERVING":
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} not serving:\n{self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class ProcessStack:
    services: dict[str, Service]
    database_url: str
    fake: FakeOpenAI
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def count(self, table: str) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            return int(row[0])

    async def wait_for(self, table: str, at_least: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count(table) < at_least:
            assert time.monotonic() < deadline, f"{table} stuck at {self.count(table)}"
            await asyncio.sleep(0.1)

    async def restart(self, name: str, graceful: bool = False) -> None:
        service = self.services[name]
        if graceful:
            service.stop()  # SIGTERM: jobs in flight get HARMEVAL_GRACE_SECONDS, then are left
        else:
            service.kill9()
        service.start()
        await service.ready()


def script(messages: list[dict[str, Any]]) -> tuple[int, str]:
    time.sleep(BACKEND_DELAY_S)
    return 200, "Content A: 1\nContent B: N/A"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai(script) as f:
        yield f


@asynccontextmanager
async def processes(
    database_url: str, tmp_path: Path, fake: FakeOpenAI, services_url: str | None = None
) -> AsyncIterator[ProcessStack]:
    """The four services as processes on `services_url` (default: the database itself; a
    fault proxy in front of it, for outages); rows are counted on `database_url`."""
    models_file = tmp_path / "models.yaml"
    models_file.write_text(
        "models:\n"
        + "".join(
            f"  - name: {m}\n    backend: openai\n    base_url: {fake.base_url}\n"
            f"    model: {m}\n    prompt_format: chat\n    max_concurrency: 8\n"
            for m in MODELS
        )
    )
    ports = free_ports(8)
    addresses = {
        s: f"127.0.0.1:{p}"
        for s, p in zip(("generator", "judge", "metrics", "runner"), ports[:4], strict=True)
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("HARMEVAL_")}
    common = {
        **base,
        "HARMEVAL_DATABASE_URL": services_url or database_url,
        "HARMEVAL_DATA_DIR": str(tmp_path),
        "HARMEVAL_LOG_LEVEL": "WARNING",
        "HARMEVAL_GRACE_SECONDS": "2",
        "HARMEVAL_AUTH_TOKENS_FILE": str(TOKENS_FILE),
        "HARMEVAL_TOKEN": OPERATOR_TOKEN,
    }
    envs = {
        "generator": {
            "HARMEVAL_GENERATOR_MODELS_FILE": str(models_file),
        },
        "judge": {
            "HARMEVAL_JUDGE_LLM_BASE_URL": fake.base_url,
            "HARMEVAL_JUDGE_LLM_NAME": "openai-listwise-fake",
            "HARMEVAL_JUDGE_LLM_MAX_RETRIES": "0",
        },
        "metrics": {
            "HARMEVAL_METRICS_GENERATOR_TARGET": addresses["generator"],
            "HARMEVAL_METRICS_JUDGE_TARGET": addresses["judge"],
        },
        "runner": {
            "HARMEVAL_RUNNER_GENERATOR_TARGET": addresses["generator"],
            "HARMEVAL_RUNNER_JUDGE_TARGET": addresses["judge"],
            "HARMEVAL_RUNNER_METRICS_TARGET": addresses["metrics"],
            "HARMEVAL_RUNNER_CHUNK_SIZE": str(CHUNK),
            "HARMEVAL_RUNNER_GENERATE_JOBS": "1",
            "HARMEVAL_RUNNER_JUDGE_JOBS": "2",
            "HARMEVAL_RUNNER_HEARTBEAT_TIMEOUT_S": "3",
        },
    }
    services = {}
    for i, (name, address) in enumerate(addresses.items()):
        env = {
            **common,
            **envs[name],
            f"HARMEVAL_{name.upper()}_ADDRESS": address,
            f"HARMEVAL_{name.upper()}_PROMETHEUS_PORT": str(ports[4 + i]),
        }
        services[name] = Service(name, env, address, tmp_path / f"{name}.log")
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            await service.ready()
        yield ProcessStack(services, database_url, fake)
    finally:
        for service in services.values():
            service.stop()


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
    prompts = [PromptRecord(f"p{i}", f"Harmful request number {i}.", "x") for i in range(N_PROMPTS)]
    study = Study(
        "crashes",
        prompts,
        [StudyModel(m, m, GenerationParams(max_tokens=16)) for m in MODELS],
        JUDGES,
    )
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
        prompts = [PromptRecord(f"p{i}", f"Request number {i}.", "x") for i in range(N_PROMPTS)]
        study = Study(
            "outage",
            prompts,
            [StudyModel(m, m, GenerationParams(max_tokens=16)) for m in MODELS],
            JUDGES,
        )
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
