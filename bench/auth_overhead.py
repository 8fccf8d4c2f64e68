"""What authentication and TLS cost: judge-service throughput with TLS and a bearer token
against the same service without either, in the same run. Target: ratio >= 0.95.

Three judge services, each as in bench/judge_service_throughput.py (its own fixed-delay
OpenAI-compatible server, `aiohttp` transport, concurrency limit c), all started at once:

  tls+token  TLS (certificates made with trustme) and an operator bearer token
  token      plaintext on loopback with the bearer token (auth is always on since issue 12)
  bare       no auth, no TLS: the production `serve()` with `create_server` replaced by the
             skeleton before issue 12 (only the metrics interceptor, a plaintext port), and a
             client channel without the token

Two workloads: `batch`, the judge throughput of judge_service_throughput.py (one JudgeBatch of
c x --items-per-slot one-answer items: one RPC, TLS on every streamed reply), and `unary`
(as many Judge calls of one item, c at once: the per-call costs, token check, audit line,
client token metadata, show). Each round runs every mode once, in an order rotated every round,
so machine drift hits all three; reported are medians over rounds. Ratio = items/s of a mode
/ items/s of `bare`; the headline is tls+token / bare on `batch`. The judge service's CPU ms
per item is also given (less noisy than rates on a shared machine; "+ms": over `bare`), and,
measured in this process, the time per call of the auth steps (token check, the server's
caller lookup, the client's metadata) and of the access interceptor's whole path with and
without its audit line. The services log at INFO, their default, so raw-text audit lines
(one per Judge call, one per JudgeBatch) count.
Writes bench/results/auth_overhead.json (or --out).

    .venv/bin/python bench/auth_overhead.py [--quick] [--rounds 5] [--concurrency 256]
        [--delay-ms 500] [--items-per-slot 6] [--workloads batch,unary]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import timeit
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import trustme
from bench_auth import BenchAuth, bench_auth
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from judge_service_throughput import (
    RESULTS,
    ROOT,
    JudgeStack,
    ad_hoc_batch,
    cpu_seconds,
    judge_stack,
)

import harmeval.server
from harmeval.common.v1 import common_pb2
from harmeval.judge.v1 import judge_pb2
from harmeval.observability import MetricsInterceptor
from harmeval.server import CONNECTION_AGE_GRACE_MS, RunningServer, Servicer, ServiceSpec
from harmeval.settings import CommonSettings

MODES = ("tls+token", "token", "bare")
TARGET = 0.95


# --- the judge service without auth (its own process: `--serve-bare`) ------------------------


async def bare_create_server(
    spec: ServiceSpec, servicer: Servicer, address: str, settings: CommonSettings
) -> RunningServer:
    """harmeval.server.create_server as it was before issue 12 (commit 547689f): the metrics
    interceptor only, a plaintext port, the same options, health and reflection."""
    limit = settings.max_message_bytes
    server = grpc.aio.server(
        interceptors=[MetricsInterceptor(spec.name)],
        options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 0),
            ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", CONNECTION_AGE_GRACE_MS),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    spec.add_to_server(servicer, server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            spec.descriptor.full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot bind {spec.name} service to {address}")
    running = RunningServer(server, port, health_servicer, spec)
    await running.set_serving(False)
    return running


def serve_bare() -> None:
    """`python -m harmeval_judge`, but serve() builds its server with bare_create_server: the
    rest (start-up, garbage-collector tuning, health, drain) is the production path."""
    harmeval.server.create_server = bare_create_server
    from harmeval_judge.__main__ import main

    main()


# --- the three stacks --------------------------------------------------------------------


def tls_files(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files = {
        "ca": directory / "ca.pem",
        "cert": directory / "tls.crt",
        "key": directory / "tls.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    files["cert"].write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files["key"]))
    return files


@asynccontextmanager
async def stacks(
    concurrency: int, delay_s: float, db_url: str, tmp: Path, log_level: str
) -> AsyncIterator[dict[str, JudgeStack]]:
    auth: BenchAuth = bench_auth(tmp)
    tls = tls_files(tmp / "tls")
    common = {"HARMEVAL_LOG_LEVEL": log_level}
    configs: dict[str, dict[str, Any]] = {
        "tls+token": {
            "service_env": {
                **common,
                "HARMEVAL_TLS_CERT_FILE": str(tls["cert"]),
                "HARMEVAL_TLS_KEY_FILE": str(tls["key"]),
            },
            "client": auth.client(CommonSettings(tls_ca_file=tls["ca"])),
        },
        "token": {"service_env": common, "client": auth.client()},
        "bare": {
            "service": [sys.executable, str(ROOT / "auth_overhead.py"), "--serve-bare"],
            "service_env": common,
            "client": CommonSettings(),
        },
    }
    async with AsyncExitStack() as stack:
        started = {}
        # One at a time: each runs its migrations on the shared database.
        for mode in MODES:
            started[mode] = await stack.enter_async_context(
                judge_stack(
                    concurrency, delay_s, "aiohttp", db_url, tmp, auth=auth, **configs[mode]
                )
            )
        yield started


# --- the workloads -------------------------------------------------------------------------


@dataclass
class Measured:
    items_per_s: float
    judge_cpu_ms_per_item: float
    client_cpu_ms_per_item: float


async def _measure(js: JudgeStack, items: int, work: Callable[[], Awaitable[None]]) -> Measured:
    cpu = cpu_seconds(js.service.pid), time.process_time()
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    judge_cpu = cpu_seconds(js.service.pid) - cpu[0]
    client_cpu = time.process_time() - cpu[1]
    return Measured(items / elapsed, judge_cpu / items * 1000, client_cpu / items * 1000)


async def batch(js: JudgeStack, items: int, concurrency: int) -> Measured:
    """One JudgeBatch of `items` items (judge_service_throughput.py's measurement)."""
    request = ad_hoc_batch(items)

    async def work() -> None:
        done = [r async for r in js.stub.JudgeBatch(request)]
        assert len(done) == items
        assert all(r.judgments[0].status == common_pb2.JUDGMENT_STATUS_OK for r in done)

    return await _measure(js, items, work)


async def unary(js: JudgeStack, items: int, concurrency: int) -> Measured:
    """`items` Judge calls of one item each (ad-hoc, as in `batch`), `concurrency` at once."""
    requests = [
        judge_pb2.JudgeRequest(judge=js.judge, prompt=item.prompt, answers=item.answers)
        for item in ad_hoc_batch(items).items
    ]
    statuses: list[int] = []

    async def caller(first: int) -> None:
        for request in requests[first::concurrency]:
            reply = await js.stub.Judge(request)
            statuses.append(reply.judgments[0].status)

    async def work() -> None:
        await asyncio.gather(*(caller(k) for k in range(concurrency)))
        assert len(statuses) == items
        assert all(s == common_pb2.JUDGMENT_STATUS_OK for s in statuses)

    return await _measure(js, items, work)


WORKLOADS = {"batch": batch, "unary": unary}


# --- per-call costs of the auth steps, in this process -------------------------------------

JUDGE_METHOD = "/harmeval.judge.v1.JudgeService/Judge"


class _Context:
    """What AccessInterceptor reads of a call: its metadata (as a gRPC client sends it)."""

    def __init__(self, token: str) -> None:
        self.metadata = (
            ("user-agent", f"grpc-python-asyncio/{grpc.__version__} grpc-c (linux; chttp2)"),
            ("authorization", f"Bearer {token}"),
        )

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


@dataclass
class _CallDetails:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


async def _per_call_us(call: Callable[[], Awaitable[object]], number: int) -> float:
    """Microseconds per awaited call, best of 5 repeats."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(number):
            await call()
        best = min(best, time.perf_counter() - started)
    return best / number * 1e6


async def micro_timings(tmp: Path, number: int = 20_000) -> dict[str, float]:
    """Microseconds per call of each auth step, and of the server interceptor's whole path
    (intercept_service, the wrapped handler: caller, rule, counter, audit line) around a
    handler that does nothing, with the audit line filtered out and written as the services
    write it (INFO, JSON, to /dev/null here)."""
    from harmeval.access import rules_of
    from harmeval.auth import AccessInterceptor
    from harmeval.clients import raw_channel
    from harmeval.log import configure_logging
    from harmeval_judge.service import SPEC

    auth = bench_auth(tmp / "micro")
    settings = auth.secured(CommonSettings(data_dir=tmp))
    interceptor = AccessInterceptor("bench", rules_of(SPEC.descriptor), settings)
    context = _Context(auth.token)
    # A stub's call on a token channel, its RPC replaced by a no-op: what the token adds.
    token_channel = raw_channel("127.0.0.1:9", auth.client(CommonSettings()))
    with_token: Any = token_channel.unary_unary(JUDGE_METHOD)
    with_token.inner, with_token.generation = (lambda request, **kwargs: kwargs), 0
    steps: dict[str, Callable[[], object]] = {
        "token check (TokenStore.authenticate)": lambda: interceptor.tokens.authenticate(
            auth.token
        ),
        "server caller lookup (metadata scan + token check)": lambda: interceptor._caller(
            context  # type: ignore[arg-type]
        ),
        "client call with the token (Channel)": lambda: with_token(None, timeout=5.0),
    }
    timings = {
        name: min(timeit.repeat(step, number=number, repeat=5)) / number * 1e6
        for name, step in steps.items()
    }

    request = judge_pb2.JudgeRequest(judge="bench-listwise", answers=[judge_pb2.Answer(text="a")])
    reply = judge_pb2.JudgeResponse()

    async def handler(_request: Any, _context: Any) -> judge_pb2.JudgeResponse:
        return reply

    inner = grpc.unary_unary_rpc_method_handler(handler)

    async def continuation(_details: Any) -> Any:
        return inner

    call_details = _CallDetails(JUDGE_METHOD, context.metadata)

    async def bare_call() -> object:
        found = await continuation(call_details)
        return await found.unary_unary(request, context)

    async def intercepted_call() -> object:
        found = await interceptor.intercept_service(continuation, call_details)  # type: ignore[arg-type]
        return await found.unary_unary(request, context)

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        root.setLevel(logging.WARNING)
        timings["handler call without the interceptor"] = await _per_call_us(bare_call, number)
        timings["with AccessInterceptor, audit line filtered out"] = await _per_call_us(
            intercepted_call, number
        )
        # Not blocking: /dev/null.
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # noqa: ASYNC230
            configure_logging("INFO", "json")
            timings["with AccessInterceptor and its audit line"] = await _per_call_us(
                intercepted_call, number // 4
            )
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    return timings


# --- the run -----------------------------------------------------------------------------


async def main(
    rounds: int,
    concurrency: int,
    delay_s: float,
    items_per_slot: int,
    workloads: list[str],
    log_level: str,
) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    items = concurrency * items_per_slot
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hb-auth-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        pg = pgserver.get_server(tmp / "pg", cleanup_mode="delete")
        try:
            async with stacks(concurrency, delay_s, pg.get_uri(), tmp, log_level) as js:
                for mode in MODES:  # warm-up: connections, TLS handshakes, first-call paths
                    for workload in workloads:
                        await WORKLOADS[workload](js[mode], concurrency, concurrency)
                for r in range(rounds):
                    order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
                    for workload in workloads:
                        for mode in order:
                            m = await WORKLOADS[workload](js[mode], items, concurrency)
                            runs.append({"round": r, "workload": workload, "mode": mode, **vars(m)})
                            print(_run_row(runs[-1]), flush=True)
            micro = await micro_timings(tmp)
        finally:
            pg.cleanup()
    summary = _summary(runs, workloads, concurrency / delay_s)
    headline = summary["batch"]["tls+token"]["ratio"] if "batch" in summary else None
    return {
        "label": "judge service throughput: TLS + bearer token vs plaintext + token vs no auth "
        "(pre-issue-12 skeleton), same run, modes interleaved",
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            "load_avg_after": os.getloadavg(),
        },
        "concurrency": concurrency,
        "delay_s": delay_s,
        "items_per_run": items,
        "rounds": rounds,
        "service_log_level": log_level,
        "target_ratio": TARGET,
        "headline_ratio_tls_token_over_bare_batch": headline,
        "summary": summary,
        "micro_us_per_call": micro,
        "runs": runs,
    }


def _summary(
    runs: list[dict[str, Any]], workloads: list[str], ideal: float
) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for workload in workloads:
        by_mode = {}
        for mode in MODES:
            mine = [r for r in runs if r["workload"] == workload and r["mode"] == mode]
            by_mode[mode] = {
                key: statistics.median(r[key] for r in mine)
                for key in ("items_per_s", "judge_cpu_ms_per_item", "client_cpu_ms_per_item")
            }
            by_mode[mode]["of_ideal"] = by_mode[mode]["items_per_s"] / ideal
        base = by_mode["bare"]
        for mode in MODES:
            by_mode[mode]["ratio"] = by_mode[mode]["items_per_s"] / base["items_per_s"]
            # Ratios within a round (the same minute of machine load), then their median.
            per_round = [
                a["items_per_s"] / b["items_per_s"]
                for a in runs
                for b in runs
                if a["workload"] == b["workload"] == workload
                and a["round"] == b["round"]
                and a["mode"] == mode
                and b["mode"] == "bare"
            ]
            by_mode[mode]["ratio_paired"] = statistics.median(per_round)
            by_mode[mode]["extra_judge_cpu_ms_per_item"] = (
                by_mode[mode]["judge_cpu_ms_per_item"] - base["judge_cpu_ms_per_item"]
            )
        out[workload] = by_mode
    return out


def _run_row(r: dict[str, Any]) -> str:
    return (
        f"  round {r['round']}  {r['workload']:<6}{r['mode']:<10}{r['items_per_s']:>9.1f} items/s"
        f"{r['judge_cpu_ms_per_item']:>8.3f} judge ms/item{r['client_cpu_ms_per_item']:>8.3f} "
        "client ms/item"
    )


def print_report(res: dict[str, Any]) -> None:
    ideal = res["concurrency"] / res["delay_s"]
    print(
        f"\njudge service, c = {res['concurrency']}, delay {res['delay_s'] * 1000:.0f} ms "
        f"(ideal {ideal:.0f} items/s), {res['items_per_run']} items per run, medians of "
        f"{res['rounds']} rounds"
    )
    print(
        f"{'workload':<9}{'mode':<11}{'items/s':>9}{'of ideal':>9}{'ratio':>7}{'paired':>8}"
        f"{'judge ms':>10}{'+ms':>7}{'client ms':>10}   (CPU ms per item)"
    )
    for workload, by_mode in res["summary"].items():
        for mode, s in by_mode.items():
            print(
                f"{workload:<9}{mode:<11}{s['items_per_s']:>9.1f}{s['of_ideal']:>9.3f}"
                f"{s['ratio']:>7.3f}{s['ratio_paired']:>8.3f}{s['judge_cpu_ms_per_item']:>10.3f}"
                f"{s['extra_judge_cpu_ms_per_item']:>+7.3f}{s['client_cpu_ms_per_item']:>10.3f}"
            )
    print("\nper call, in this process (µs):")
    for name, us in res["micro_us_per_call"].items():
        print(f"  {name:<52}{us:>8.1f}")
    headline = res["headline_ratio_tls_token_over_bare_batch"]
    if headline is not None:
        verdict = "meets" if headline >= TARGET else "BELOW"
        print(
            f"\nratio (TLS + token) / (no auth), batch: {headline:.3f} "
            f"({verdict} the target {TARGET})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--delay-ms", type=float, default=500.0)
    parser.add_argument("--items-per-slot", type=int, default=6)
    parser.add_argument("--workloads", default="batch,unary", help="comma-separated")
    parser.add_argument("--log-level", default="INFO", help="the services' HARMEVAL_LOG_LEVEL")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 2 items per slot")
    parser.add_argument("--out", type=Path, default=RESULTS / "auth_overhead.json")
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare()
        sys.exit(0)
    rounds, per_slot = (3, 2) if args.quick else (args.rounds, args.items_per_slot)
    res = asyncio.run(
        main(
            rounds,
            args.concurrency,
            args.delay_ms / 1000,
            per_slot,
            args.workloads.split(","),
            args.log_level,
        )
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print_report(res)
