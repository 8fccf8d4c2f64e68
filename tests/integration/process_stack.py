"""The four services as real child processes (restarted as Kubernetes would), on ports of
their own, for tests that kill, cut or load a service from outside: the small models and the
LLM judge behind a fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg

from harmeval.clients import health_status
from tests.conftest import free_ports
from tests.credentials import OPERATOR_TOKEN, TOKENS_FILE
from tests.fakes.openai_server import FakeOpenAI

CHUNK = 2
MODELS = ["small-a", "small-b"]
JUDGES = ["openai-listwise-fake", "refusal-matcher"]


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


@asynccontextmanager
async def processes(
    database_url: str,
    tmp_path: Path,
    fake: FakeOpenAI,
    services_url: str | None = None,
    settings: dict[str, dict[str, str]] | None = None,
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
            **(settings or {}).get(name, {}),
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
