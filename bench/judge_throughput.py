"""Judge client throughput: the LLM judge's transports + call_with_retries + AdaptiveLimiter.

CLIENT PATH ONLY, not the judge service: items go straight from this process's event loop
through `call_with_retries` and a transport to a local OpenAI-compatible server (a separate
process, so client and server never share one event loop) that answers
`POST /v1/chat/completions` after a fixed delay. With that delay fixed, the best possible
throughput at concurrency c is c / delay; the ratio to it shows what the client path costs.

Main path: the judge's two transports as shipped (harmeval_judge.llm_client: `openai-sdk`
posts through the SDK's low-level `client.post` on its aiohttp transport; `aiohttp` posts the
same JSON directly). Diagnostics locate any shortfall: a plain asyncio.Semaphore and the
limiter with no network at all (the event loop's own cost, and ours on top), and the SDK's
typed `chat.completions.create` on its httpx2 and aiohttp transports, with the pool raised and
with its default pool (max_keepalive_connections=100). Client and server CPU time are
recorded: a process whose CPU time is close to the wall time is the bottleneck, and
1 / (client CPU per item) is the most items/s this client can drive on this core whatever the
concurrency. Writes bench/results/judge_throughput.json (or --out).

    .venv/bin/python bench/judge_throughput.py [--items 2048] [--delay-ms 50] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import openai
from aiohttp import web
from openai.types.chat import ChatCompletion

from harmeval_judge.limits import (
    AdaptiveLimiter,
    Budget,
    Prices,
    RetryPolicy,
    call_with_retries,
    classify_openai_error,
)
from harmeval_judge.llm_client import AiohttpTransport, SdkTransport, read_completion

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "bench-judge"
LABEL = (
    "client path only (the judge's transports + call_with_retries + AdaptiveLimiter) against a "
    "local fixed-delay OpenAI-compatible server in a separate process; not the judge service"
)
# About the size of a listwise judge request with four short answers.
MESSAGES: list[dict[str, str]] = [
    {"role": "system", "content": "You rank answers by harmfulness. " * 8},
    {"role": "user", "content": "Content A: an answer to be judged, kept short. " * 20},
]
PRICES = Prices(prompt_per_1k=0.0025, completion_per_1k=0.01)


# --- the server (runs in its own process) ---------------------------------------------------


def serve(delay_s: float) -> None:
    requests = 0
    unauthorised = 0

    async def completions(request: web.Request) -> web.Response:
        nonlocal requests, unauthorised
        if request.headers.get("Authorization") != "Bearer bench":
            unauthorised += 1
        body = await request.json()
        await asyncio.sleep(delay_s)
        requests += 1
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        return web.json_response(
            {
                "id": f"chatcmpl-{requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Content A: 1"},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": 4,
                    "total_tokens": prompt_tokens + 4,
                },
            }
        )

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {"cpu_s": time.process_time(), "requests": requests, "unauthorised": unauthorised}
        )

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", completions)
        app.router.add_get("/health", health)
        app.router.add_get("/stats", stats)
        # A listen backlog above the largest concurrency: with the default (128) a burst of 256
        # new connections overflows it and the dropped SYNs are retried only after 1 s.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=2048).start()
        print(f"listening {sock.getsockname()[1]}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


class Server:
    """The fixed-delay server as a subprocess: wait for health; terminate, then kill."""

    def __init__(self, delay_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--delay-ms", str(delay_s * 1000)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"bench server failed to start: {line!r}")
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"

    async def wait_healthy(self, session: aiohttp.ClientSession) -> None:
        for _ in range(100):
            try:
                async with session.get(f"{self.base}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError("bench server never became healthy")

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, float]:
        async with session.get(f"{self.base}/stats") as r:
            data: dict[str, float] = await r.json()
            return data

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the client ------------------------------------------------------------------------------

Call = Callable[[], Awaitable[Any]]


def sdk_client(base: str, concurrency: int, transport: str, pool: str) -> openai.AsyncOpenAI:
    # The SDK's default pool (DEFAULT_CONNECTION_LIMITS) keeps only 100 idle connections: above
    # that concurrency, connections are closed after use and reopened for the next request.
    limits = (
        httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        if pool == "raised"
        else openai.DEFAULT_CONNECTION_LIMITS
    )
    http_client = (
        openai.DefaultAioHttpClient(limits=limits)
        if transport == "aiohttp"
        else openai.DefaultAsyncHttpxClient(limits=limits)
    )
    return openai.AsyncOpenAI(
        base_url=f"{base}/v1",
        api_key="bench",
        max_retries=0,  # call_with_retries does the retrying, under the limiter
        timeout=30.0,
        http_client=http_client,
    )


REQUEST: dict[str, Any] = {
    "model": MODEL,
    "messages": MESSAGES,
    "temperature": 0.0,
    "max_tokens": 16,
}

# name -> what it measures
VARIANTS = {
    "judge_openai_sdk": "the judge's openai-sdk transport (SDK client.post, aiohttp, raw reply)",
    "judge_aiohttp": "the judge's aiohttp transport (plain POST, same JSON and errors)",
    "sdk_httpx2": "chat.completions.create, default httpx2 transport, pool raised",
    "sdk_aiohttp": "chat.completions.create, aiohttp transport, pool raised",
    "sdk_httpx2_default_pool": "chat.completions.create, httpx2, default pool (100 keep-alive)",
    "limiter_only": "limiter + asyncio.sleep(delay), no network",
    "semaphore_only": "asyncio.Semaphore + asyncio.sleep(delay): the event loop's own cost",
}


@asynccontextmanager
async def make_call(name: str, base: str, concurrency: int, delay_s: float) -> AsyncIterator[Call]:
    if name in ("limiter_only", "semaphore_only"):
        yield lambda: asyncio.sleep(delay_s)
    elif name.startswith("judge_"):
        make = SdkTransport if name == "judge_openai_sdk" else AiohttpTransport
        judge_transport = make(f"{base}/v1", "bench", 30.0, concurrency)
        try:
            yield lambda: judge_transport.post(REQUEST)
        finally:
            await judge_transport.close()
    else:
        http = "aiohttp" if "aiohttp" in name else "httpx2"
        pool = "default" if name.endswith("default_pool") else "raised"
        client = sdk_client(base, concurrency, http, pool)
        try:
            yield lambda: client.chat.completions.create(**REQUEST)
        finally:
            await client.close()


async def drive(
    call: Call,
    concurrency: int,
    items: int,
    server: Server,
    session: aiohttp.ClientSession,
    delay_s: float,
    plain: bool = False,
) -> dict[str, float]:
    """Push `items` through call_with_retries under one limiter; time it and its CPU.

    `plain`: an asyncio.Semaphore and no call_with_retries, the baseline for our machinery.
    """
    limiter = AdaptiveLimiter(initial=concurrency, minimum=1, maximum=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    policy = RetryPolicy()
    budget = Budget(None)
    latencies: list[float] = []
    attempts_total = 0

    async def timed() -> Any:
        started = time.perf_counter()
        value = await call()
        latencies.append(time.perf_counter() - started)
        return value

    async def item() -> None:
        nonlocal attempts_total
        if plain:
            async with semaphore:
                await timed()
            attempts_total += 1
            return
        value, attempts = await call_with_retries(
            timed, limiter=limiter, policy=policy, deadline_s=30.0, classify=classify_openai_error
        )
        attempts_total += attempts
        if isinstance(value, ChatCompletion):
            usage = value.usage
            tokens = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        elif isinstance(value, bytes):
            tokens = read_completion(value)[1:3]
        else:
            tokens = (0, 0)
        budget.charge(PRICES.cost(*tokens))

    # Start every run from a collected heap, so earlier runs' garbage is not charged to it.
    gc.collect()
    before = await server.stats(session)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(item() for _ in range(items)))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    after = await server.stats(session)
    if after["unauthorised"] != before["unauthorised"]:
        raise RuntimeError("requests reached the server without the API key")
    latencies.sort()
    return {
        "items_per_s": items / wall,
        "ratio_to_ideal": items / wall / (concurrency / delay_s),
        "wall_s": wall,
        "client_cpu_share": cpu / wall,
        "server_cpu_share": (after["cpu_s"] - before["cpu_s"]) / wall,
        "client_cpu_ms_per_item": 1000 * cpu / items,
        "client_bound_items_per_s": items / cpu,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2],
        "latency_p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "attempts_per_item": attempts_total / items,
        "final_limit": limiter.limit,
        "cost_usd": budget.spent,
    }


def bottleneck(run: dict[str, float]) -> str:
    if run["ratio_to_ideal"] >= 0.9:
        return "none (within 10% of ideal)"
    if run["client_cpu_share"] >= 0.8:
        return "client CPU"
    if run["server_cpu_share"] >= 0.8:
        return "server CPU"
    return "neither process saturated (scheduling, machine contention)"


async def run_variant(
    name: str,
    concurrency: int,
    items: int,
    rounds: int,
    delay_s: float,
    server: Server,
    session: aiohttp.ClientSession,
) -> dict[str, Any]:
    plain = name == "semaphore_only"
    async with make_call(name, server.base, concurrency, delay_s) as call:
        # Warm-up: open the connections and let first-request costs pass.
        await drive(call, concurrency, 2 * concurrency, server, session, delay_s, plain)
        runs = [
            await drive(call, concurrency, items, server, session, delay_s, plain)
            for _ in range(rounds)
        ]
    # The median round (the lower one of an even count), reported whole.
    median = sorted(runs, key=lambda r: r["items_per_s"])[(len(runs) - 1) // 2]
    return {
        "variant": name,
        "what": VARIANTS[name],
        "concurrency": concurrency,
        "items": items,
        "rounds": rounds,
        "ideal_items_per_s": concurrency / delay_s,
        "items_per_s_all_rounds": [r["items_per_s"] for r in runs],
        **median,
        "bottleneck": bottleneck(median),
    }


MAIN = [
    ("judge_openai_sdk", 64),
    ("judge_openai_sdk", 256),
    ("judge_aiohttp", 64),
    ("judge_aiohttp", 256),
]
# No-network baselines run first, before the SDK runs have grown this process's heap.
BASELINES = [
    ("semaphore_only", 64),
    ("semaphore_only", 256),
    ("limiter_only", 64),
    ("limiter_only", 256),
]
DIAGNOSTICS = [
    ("sdk_httpx2", 64),
    ("sdk_httpx2", 256),
    ("sdk_aiohttp", 64),
    ("sdk_aiohttp", 256),
    ("sdk_httpx2_default_pool", 256),
]


async def main(items: int, delay_s: float, rounds: int, diagnostics: bool) -> dict[str, Any]:
    server = Server(delay_s)
    results: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as session:
            await server.wait_healthy(session)
            plan = BASELINES + MAIN + DIAGNOSTICS if diagnostics else MAIN
            for name, concurrency in plan:
                results.append(
                    await run_variant(name, concurrency, items, rounds, delay_s, server, session)
                )
    finally:
        server.stop()
    return {
        "label": LABEL,
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "openai": openai.__version__,
            "httpx2": httpx2.__version__,
            "aiohttp": aiohttp.__version__,
        },
        "delay_ms": 1000 * delay_s,
        "target_ratio": 0.9,
        "results": results,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _print(res: dict[str, Any]) -> None:
    print(res["label"])
    print(f"server delay {res['delay_ms']:.0f} ms; ratio = items/s / (concurrency / delay)")
    print(
        f"{'variant':<24}{'conc':>5}{'items/s':>8}{'ideal':>6}{'ratio':>7}{'p50 ms':>7}"
        f"{'p99 ms':>7}{'cli CPU':>8}{'srv CPU':>8}{'cli ms/item':>12}{'cli max/s':>10}"
    )
    for r in res["results"]:
        print(
            f"{r['variant']:<24}{r['concurrency']:>5}{r['items_per_s']:>8.0f}"
            f"{r['ideal_items_per_s']:>6.0f}{r['ratio_to_ideal']:>7.3f}"
            f"{r['latency_p50_ms']:>7.0f}{r['latency_p99_ms']:>7.0f}"
            f"{r['client_cpu_share']:>8.2f}{r['server_cpu_share']:>8.2f}"
            f"{r['client_cpu_ms_per_item']:>12.3f}{r['client_bound_items_per_s']:>10.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=2048)  # a multiple of 64 and 256
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-diagnostics", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "judge_throughput.json")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.delay_ms / 1000)
        sys.exit(0)
    started = time.perf_counter()
    res = asyncio.run(
        main(args.items, args.delay_ms / 1000, args.rounds, diagnostics=not args.no_diagnostics)
    )
    res["bench_wall_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    _print(res)
    print(f"bench took {res['bench_wall_s']:.1f} s")
