"""A burst of concurrent Judge calls against one judge service (a process, default settings,
its LLM judge behind a fixed-delay OpenAI-compatible server): how many answer OK, how many are
refused with RESOURCE_EXHAUSTED (past HARMEVAL_GRPC_MAX_CONCURRENT_RPCS), anything else, and
the service's peak memory. Before issue 13, gRPC's own pending-request limit CANCELLED 6-9% of
a 2,000-call burst before any handler saw them; clients do not retry CANCELLED.

    .venv/bin/python bench/burst.py [--bursts 2000,4000,2000] [--limit 2048] [--delay-ms 200]

Writes bench/results/burst.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from judge_service_throughput import judge_stack

from harmeval.common.v1 import common_pb2
from harmeval.judge.v1 import judge_pb2

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def burst(stub: Any, n: int, round_: int) -> tuple[Counter[str], float]:
    async def one(i: int) -> str:
        request = judge_pb2.JudgeRequest(
            judge="bench-listwise",
            prompt=common_pb2.Prompt(text=f"burst {round_} prompt {i}"),
            answers=[judge_pb2.Answer(text=f"answer {i}")],
        )
        try:
            await stub.Judge(request, timeout=120)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return "OK"

    started = time.perf_counter()
    codes = Counter(await asyncio.gather(*(one(i) for i in range(n))))
    return codes, time.perf_counter() - started


async def main(bursts: list[int], limit: int, delay_s: float) -> list[dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hburst-", dir="/tmp") as tmp:
        pg = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        env = {"HARMEVAL_GRPC_MAX_CONCURRENT_RPCS": str(limit)}
        async with judge_stack(
            256, delay_s, "aiohttp", pg.get_uri(), Path(tmp), service_env=env
        ) as js:
            await burst(js.stub, 16, -1)  # warm-up: connections, the judge's first call
            for i, n in enumerate(bursts):
                codes, took = await burst(js.stub, n, i)
                rows.append(
                    {
                        "burst": n,
                        "limit": limit,
                        "codes": dict(codes),
                        "seconds": took,
                        "service_peak_rss_mib": peak_rss_mib(js.service.pid),
                    }
                )
                print(
                    f"burst {n:>6} (limit {limit}): {dict(codes)} in {took:.1f}s, service "
                    f"peak RSS {rows[-1]['service_peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
        pg.cleanup()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bursts", default="2000,4000,2000")
    parser.add_argument("--limit", type=int, default=2048)
    parser.add_argument("--delay-ms", type=float, default=200)
    args = parser.parse_args()
    result = asyncio.run(
        main([int(b) for b in args.bursts.split(",")], args.limit, args.delay_ms / 1000)
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "burst.json").write_text(json.dumps(result, indent=2))
