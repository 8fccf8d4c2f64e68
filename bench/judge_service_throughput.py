"""Judged items/s THROUGH THE JUDGE SERVICE against a fixed-delay OpenAI-compatible server.

Three processes: the fixed-delay server (bench/judge_throughput.py --serve), the judge service
(`python -m harmeval_judge`, its LLM judge pointed at that server, concurrency limit = c), and
this client sending one JudgeBatch of N one-answer items (ad-hoc answers: nothing stored, so the
database is not what is measured) with an operator token (bench_auth.py). Ideal bound:
c / delay items/s; the ratio to it is reported for c = 64 and 256, per LLM transport
(HARMEVAL_JUDGE_LLM_TRANSPORT) and delay, with each process's CPU time per item (the judge
service's is what limits the ratio: with a fixed delay the replies of all c requests arrive
together and wait for each other's processing).
Writes bench/results/judge_service_throughput.json.

    .venv/bin/python bench/judge_service_throughput.py [--delay-ms 500,1000] [--items-per-slot 6]
        [--transports openai-sdk,aiohttp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from bench_auth import BenchAuth, bench_auth

from harmeval.clients import health_status, raw_channel
from harmeval.common.v1 import common_pb2
from harmeval.judge.v1 import judge_pb2, judge_pb2_grpc
from harmeval.settings import CommonSettings

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _popen(
    cmd: list[str], env: dict[str, str] | None = None, capture: bool = False
) -> subprocess.Popen[str]:
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(cmd, text=True, env=env, stdout=out, stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class JudgeStack:
    """The fixed-delay LLM server and a judge service using it, both running."""

    stub: judge_pb2_grpc.JudgeServiceStub
    llm_server: subprocess.Popen[str]
    llm_base: str
    service: subprocess.Popen[str]
    judge: str = "bench-listwise"

    async def backend_requests(self) -> int:
        """Requests the LLM server has answered so far (its own count)."""
        base = self.llm_base.removesuffix("/v1")
        async with aiohttp.ClientSession() as s, s.get(f"{base}/stats") as r:
            return int((await r.json())["requests"])


@asynccontextmanager
async def judge_stack(
    concurrency: int,
    delay_s: float,
    transport: str,
    db_url: str,
    tmp: Path,
    *,
    auth: BenchAuth | None = None,
    service: Sequence[str] = (),
    service_env: Mapping[str, str] | None = None,
    client: CommonSettings | None = None,
) -> AsyncIterator[JudgeStack]:
    """`service`: the judge's command (default `python -m harmeval_judge`); `service_env`: its
    settings over the bench's; `client`: this process's channel settings (default: plaintext
    with the operator token of `auth`, made in `tmp` when not given)."""
    auth = auth or bench_auth(tmp)
    client = client or auth.client()
    server = _popen(
        [
            sys.executable,
            str(ROOT / "judge_throughput.py"),
            "--serve",
            "--delay-ms",
            str(delay_s * 1000),
        ],
        capture=True,
    )
    assert server.stdout is not None
    base = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/v1"
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        **auth.env(),
        "HARMEVAL_DATABASE_URL": db_url,
        "HARMEVAL_DATA_DIR": str(tmp),
        "HARMEVAL_JUDGE_ADDRESS": address,
        "HARMEVAL_JUDGE_PROMETHEUS_PORT": str(free_port()),
        "HARMEVAL_JUDGE_LLM_BASE_URL": base,
        "HARMEVAL_JUDGE_LLM_API_KEY": "bench",
        "HARMEVAL_JUDGE_LLM_MODEL": "bench-judge",
        "HARMEVAL_JUDGE_LLM_NAME": "bench-listwise",
        "HARMEVAL_JUDGE_LLM_MAX_CONCURRENCY": str(concurrency),
        "HARMEVAL_JUDGE_LLM_TRANSPORT": transport,
        "HARMEVAL_LOG_LEVEL": "WARNING",
        **(service_env or {}),
    }
    service_proc = _popen(list(service) or [sys.executable, "-m", "harmeval_judge"], env=env)
    try:
        for _ in range(300):
            if await health_status(address, client) == "SERVING":
                break
            if service_proc.poll() is not None:
                raise RuntimeError(f"judge service exited ({service_proc.returncode})")
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("judge service did not start")
        limit = 64 * 1024 * 1024
        async with raw_channel(
            address,
            client,
            [
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
            ],
        ) as channel:
            yield JudgeStack(judge_pb2_grpc.JudgeServiceStub(channel), server, base, service_proc)
    finally:
        for proc in (service_proc, server):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def ad_hoc_batch(n: int) -> judge_pb2.JudgeBatchRequest:
    """n one-answer items sent as text (nothing stored: the database is not measured)."""
    return judge_pb2.JudgeBatchRequest(
        judge="bench-listwise",
        items=[
            judge_pb2.JudgeItem(
                prompt=common_pb2.Prompt(text=f"prompt {i}"),
                answers=[judge_pb2.Answer(text=f"answer {i}")],
            )
            for i in range(n)
        ],
    )


async def run(
    concurrency: int, delay_s: float, items: int, transport: str, db_url: str, tmp: Path
) -> dict[str, float]:
    async with judge_stack(concurrency, delay_s, transport, db_url, tmp) as js:
        stub, server, service = js.stub, js.llm_server, js.service
        [r async for r in stub.JudgeBatch(ad_hoc_batch(concurrency))]  # warm-up: connections
        cpu = [cpu_seconds(server.pid), cpu_seconds(service.pid), time.process_time()]
        started = time.perf_counter()
        done = [r async for r in stub.JudgeBatch(ad_hoc_batch(items))]
        elapsed = time.perf_counter() - started
        cpu_after = [cpu_seconds(server.pid), cpu_seconds(service.pid), time.process_time()]
        assert len(done) == items
        assert all(r.judgments[0].status == common_pb2.JUDGMENT_STATUS_OK for r in done)
        per_item = [(b - a) / items * 1000 for a, b in zip(cpu, cpu_after, strict=True)]
        return {
            "items_per_s": items / elapsed,
            "ratio": items / elapsed / (concurrency / delay_s),
            "cpu_ms_per_item_llm_server": per_item[0],
            "cpu_ms_per_item_judge_service": per_item[1],
            "cpu_ms_per_item_client": per_item[2],
        }


async def main(
    delays_s: list[float], transports: list[str], items_per_slot: int
) -> list[dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hb-", dir="/tmp") as tmp:
        pg = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        for delay_s in delays_s:
            for transport in transports:
                for c in (64, 256):
                    measured = await run(
                        c, delay_s, c * items_per_slot, transport, pg.get_uri(), Path(tmp)
                    )
                    runs.append(
                        {
                            "transport": transport,
                            "delay_s": delay_s,
                            "concurrency": c,
                            "ideal_items_per_s": c / delay_s,
                            **measured,
                        }
                    )
                    print(_row(runs[-1]), flush=True)
        pg.cleanup()
    return runs


def _row(r: dict[str, Any]) -> str:
    return (
        f"{r['transport']:<11}{r['delay_s'] * 1000:>7.0f}{r['concurrency']:>6}"
        f"{r['items_per_s']:>9.1f}{r['ideal_items_per_s']:>7.0f}{r['ratio']:>7.3f}"
        f"{r['cpu_ms_per_item_judge_service']:>9.2f}{r['cpu_ms_per_item_llm_server']:>9.2f}"
        f"{r['cpu_ms_per_item_client']:>9.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-ms", default="500,1000", help="comma-separated")
    parser.add_argument("--items-per-slot", type=int, default=6)
    parser.add_argument("--transports", default="openai-sdk,aiohttp", help="comma-separated")
    args = parser.parse_args()
    print(
        f"{'transport':<11}{'delay':>7}{'conc':>6}{'items/s':>9}{'ideal':>7}{'ratio':>7}"
        f"{'judge ms':>9}{'llm ms':>9}{'client':>9}   (CPU ms per item)"
    )
    res = asyncio.run(
        main(
            [float(d) / 1000 for d in args.delay_ms.split(",")],
            args.transports.split(","),
            args.items_per_slot,
        )
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "judge_service_throughput.json").write_text(
        json.dumps({"cpu": platform.processor() or platform.machine(), "runs": res}, indent=2)
    )
