"""Judged items/s THROUGH THE JUDGE SERVICE against a fixed-delay OpenAI-compatible server.

Three processes: the fixed-delay server (bench/judge_throughput.py --serve), the judge service
(`python -m harmeval_judge`, its LLM judge pointed at that server, concurrency limit = c), and
this client sending one JudgeBatch of N one-answer items (ad-hoc answers: nothing stored, so the
database is not what is measured). Ideal bound: c / delay items/s; the ratio to it is reported
for c = 64 and 256. Writes bench/results/judge_service_throughput.json.

    .venv/bin/python bench/judge_service_throughput.py [--delay-ms 500] [--items-per-slot 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import grpc

from harmeval.clients import health_status
from harmeval.common.v1 import common_pb2
from harmeval.judge.v1 import judge_pb2, judge_pb2_grpc

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


async def run(concurrency: int, delay_s: float, items: int, db_url: str, tmp: Path) -> float:
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
        "HARMEVAL_DATABASE_URL": db_url,
        "HARMEVAL_DATA_DIR": str(tmp),
        "HARMEVAL_JUDGE_ADDRESS": address,
        "HARMEVAL_JUDGE_PROMETHEUS_PORT": str(free_port()),
        "HARMEVAL_JUDGE_LLM_BASE_URL": base,
        "HARMEVAL_JUDGE_LLM_API_KEY": "bench",
        "HARMEVAL_JUDGE_LLM_MODEL": "bench-judge",
        "HARMEVAL_JUDGE_LLM_NAME": "bench-listwise",
        "HARMEVAL_JUDGE_LLM_MAX_CONCURRENCY": str(concurrency),
        "HARMEVAL_LOG_LEVEL": "WARNING",
    }
    service = _popen([sys.executable, "-m", "harmeval_judge"], env=env)
    try:
        for _ in range(300):
            if await health_status(address) == "SERVING":
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("judge service did not start")
        limit = 64 * 1024 * 1024
        async with grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
            ],
        ) as channel:
            stub = judge_pb2_grpc.JudgeServiceStub(channel)

            def batch(n: int) -> judge_pb2.JudgeBatchRequest:
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

            [r async for r in stub.JudgeBatch(batch(concurrency))]  # warm-up: connections
            started = time.perf_counter()
            done = [r async for r in stub.JudgeBatch(batch(items))]
            elapsed = time.perf_counter() - started
            assert len(done) == items
            assert all(r.judgments[0].status == common_pb2.JUDGMENT_STATUS_OK for r in done)
        return items / elapsed
    finally:
        for proc in (service, server):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def main(delay_s: float, items_per_slot: int) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    result: dict[str, float] = {"delay_s": delay_s}
    with tempfile.TemporaryDirectory(prefix="hb-", dir="/tmp") as tmp:
        pg = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        for c in (64, 256):
            rate = await run(c, delay_s, c * items_per_slot, pg.get_uri(), Path(tmp))
            result[f"items_per_s_at_{c}"] = rate
            result[f"ideal_at_{c}"] = c / delay_s
            result[f"ratio_at_{c}"] = rate / (c / delay_s)
        pg.cleanup()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-ms", type=float, default=500.0)
    parser.add_argument("--items-per-slot", type=int, default=6)
    args = parser.parse_args()
    res = asyncio.run(main(args.delay_ms / 1000, args.items_per_slot))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "judge_service_throughput.json").write_text(json.dumps(res, indent=2))
    for c in (64, 256):
        print(
            f"concurrency {c:>3}: {res[f'items_per_s_at_{c}']:7.1f} items/s, ideal "
            f"{res[f'ideal_at_{c}']:.0f}, ratio {res[f'ratio_at_{c}']:.3f}"
        )
