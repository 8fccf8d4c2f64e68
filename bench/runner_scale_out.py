"""Scale-out of judging: N = 1, 2, 4 judge-service replicas behind one DNS name, each in front
of its own backend capped at c concurrent requests. Target: X(N) / (N * X(1)) >= 0.9, X being
verdict calls per second over a whole study run through the runner.

Processes (bench/study_stack.py): one embedded Postgres; the generator on a 0-delay
OpenAI-compatible server; per N: N fixed-delay servers (200 ms, each capped at c = 16 requests
at once: X(1) <= c / delay = 80 calls/s, small enough for this machine), N judge services on
127.0.0.k:PORT (the same PORT; HARMEVAL_JUDGE_LLM_MAX_CONCURRENCY=c, each with its own
backend), the metrics service and the runner. The runner finds the replicas the way it would
in Kubernetes: HARMEVAL_RUNNER_JUDGE_TARGET=dns://127.0.0.1:DNSPORT/judges.bench:PORT, the
name answered (A records 127.0.0.1..N) by a small dnslib server in this process, and gRPC's
round_robin over the addresses (lib/harmeval/clients.py). No /etc/hosts change.

Generation is not what is measured: the study's answers are generated before (a warm-up
through the generator's stub), so the run's generate stage finds them all stored. Each N has
a judge of its own name (bench-listwise-nN), so no verdict is cached either. One small model,
one listwise judge: one backend call per prompt; prompts = --prompts-per-replica x N, so
every N runs about as long.

Reported per N: X(N) (calls / seconds from just before StartRun to the run's end), the same
rate between 10% and 90% of the judge stage (without the ramp-up and tail), each backend's
share of the calls (fair: 1/N each) and the most requests it held at once (<= c: the replica
kept its cap), and CPU seconds per process tree. When all processes together use about
os.cpu_count() cores, the machine, not the design, is what stops X(N) from growing with N.
Servers close connections after HARMEVAL_GRPC_MAX_CONNECTION_AGE_S (60 s); runs here are
shorter, so the runner resolves the name once per N.

Writes bench/results/runner_scale_out.json (or --out).

    .venv/bin/python bench/runner_scale_out.py [--quick] [--replicas 1,2,4] [--cap 16]
        [--prompts-per-replica 1200] [--delay-ms 200] [--set HARMEVAL_X=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from bench_auth import bench_auth
from dnslib import QTYPE, RR, A, DNSRecord  # type: ignore[import-untyped]
from dnslib.server import (  # type: ignore[import-untyped]
    BaseResolver,
    DNSHandler,
    DNSLogger,
    DNSServer,
)
from study_stack import (
    RESULTS,
    FakeLlm,
    InFlightSampler,
    Postgres,
    Processes,
    cpu_delta,
    cpu_table,
    free_port,
    machine_busy_s,
    models_file,
    prompts,
    run_study,
    stage_rows,
    study_models,
    tree_cpu,
    with_application_name,
    workdir,
)

from harmeval.clients import raw_channel
from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc
from harmeval.runner.v1 import runner_pb2
from harmeval.settings import CommonSettings

NAME = "judges.bench"
MODEL = "small-1"


class ReplicaResolver(BaseResolver):  # type: ignore[misc]
    """A records for NAME: 127.0.0.1 .. 127.0.0.n; nothing for other names or types."""

    def __init__(self) -> None:
        self.replicas = 0
        self.queries = 0
        self.lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        q = request.q
        with self.lock:
            self.queries += 1
            n = self.replicas
        if str(q.qname).rstrip(".") == NAME and q.qtype == QTYPE.A:
            for k in range(1, n + 1):
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(f"127.0.0.{k}"), ttl=1))
        return reply


def start_dns() -> tuple[DNSServer, ReplicaResolver, int]:
    resolver = ReplicaResolver()
    quiet = DNSLogger(prefix=False, logf=lambda _: None)
    server = DNSServer(resolver, port=0, address="127.0.0.1", logger=quiet)
    server.start_thread()
    return server, resolver, int(server.server.server_address[1])


async def warm_up(
    address: str, study_prompts: list[Any], params: Any, client: CommonSettings
) -> float:
    """Generates every prompt's answer once (stored: the runs' generate stages find them)."""
    started = time.perf_counter()
    async with raw_channel(address, client) as ch:
        stub = generator_pb2_grpc.GeneratorServiceStub(ch)
        sem = asyncio.Semaphore(16)

        async def one(first: int) -> None:
            async with sem:
                await stub.Generate(
                    generator_pb2.GenerateRequest(
                        model=MODEL, prompts=study_prompts[first : first + 8], params=params
                    )
                )

        await asyncio.gather(*(one(f) for f in range(0, len(study_prompts), 8)))
    return time.perf_counter() - started


async def run_replicas(
    n: int,
    *,
    cap: int,
    delay_s: float,
    n_prompts: int,
    all_prompts: list[Any],
    tmp: Path,
    db_url: str,
    base_procs: Processes,
    pg: Postgres,
    generator_address: str,
    dns_port: int,
    resolver: ReplicaResolver,
    overrides: dict[str, str],
) -> dict[str, Any]:
    logs = tmp / f"n{n}"
    logs.mkdir()
    procs = Processes(logs, base_procs.auth)
    judge_name = f"bench-listwise-n{n}"
    port = free_port()
    common = {"HARMEVAL_DATA_DIR": str(tmp)}
    backends = [FakeLlm(f"llm-judge-{k}", delay_s, logs, cap) for k in range(1, n + 1)]
    try:
        for b in backends:
            procs.add(b.proc)
        replicas = {f"judge-{k}": f"127.0.0.{k}:{port}" for k in range(1, n + 1)}
        for k, (name, address) in enumerate(replicas.items()):
            procs.start(
                name,
                "harmeval_judge",
                {
                    **common,
                    "HARMEVAL_DATABASE_URL": with_application_name(db_url, name),
                    "HARMEVAL_JUDGE_ADDRESS": address,
                    "HARMEVAL_JUDGE_PROMETHEUS_PORT": str(free_port()),
                    "HARMEVAL_JUDGE_LLM_BASE_URL": backends[k].base_url,
                    "HARMEVAL_JUDGE_LLM_MODEL": "bench-judge",
                    "HARMEVAL_JUDGE_LLM_NAME": judge_name,
                    "HARMEVAL_JUDGE_LLM_TRANSPORT": "aiohttp",
                    "HARMEVAL_JUDGE_LLM_MAX_CONCURRENCY": str(cap),
                    **overrides,
                },
            )
            await procs.wait_healthy({name: address})
        with resolver.lock:
            resolver.replicas = n
            resolver.queries = 0
        target = f"dns://127.0.0.1:{dns_port}/{NAME}:{port}"
        addresses = {"metrics": f"127.0.0.1:{free_port()}", "runner": f"127.0.0.1:{free_port()}"}
        procs.start(
            "metrics",
            "harmeval_metrics",
            {
                **common,
                "HARMEVAL_DATABASE_URL": with_application_name(db_url, "metrics"),
                "HARMEVAL_METRICS_ADDRESS": addresses["metrics"],
                "HARMEVAL_METRICS_PROMETHEUS_PORT": str(free_port()),
                "HARMEVAL_METRICS_GENERATOR_TARGET": generator_address,
                "HARMEVAL_METRICS_JUDGE_TARGET": target,
                **overrides,
            },
        )
        await procs.wait_healthy({"metrics": addresses["metrics"]})
        procs.start(
            "runner",
            "harmeval_runner",
            {
                **common,
                "HARMEVAL_DATABASE_URL": with_application_name(db_url, "runner"),
                "HARMEVAL_RUNNER_ADDRESS": addresses["runner"],
                "HARMEVAL_RUNNER_PROMETHEUS_PORT": str(free_port()),
                "HARMEVAL_RUNNER_GENERATOR_TARGET": generator_address,
                "HARMEVAL_RUNNER_JUDGE_TARGET": target,
                "HARMEVAL_RUNNER_METRICS_TARGET": addresses["metrics"],
                **overrides,
            },
        )
        await procs.wait_healthy({"runner": addresses["runner"]})
        definition = runner_pb2.StudyDefinition(
            name=f"bench-scale-n{n}",
            prompts=all_prompts[:n_prompts],
            models=study_models([MODEL]),
            judges=[judge_name],
        )
        roots = {**procs.pids(), **base_procs.pids()}
        before = tree_cpu(roots) | pg.cpu() | {"bench (this process)": time.process_time()}
        stats_before = [await b.stats() for b in backends]
        machine_before = machine_busy_s()
        window0 = time.perf_counter()
        sampler = InFlightSampler({f"llm-judge-{k}": b for k, b in enumerate(backends, 1)})
        sampler.start()
        outcome = await run_study(addresses["runner"], definition, procs.auth.client())
        mean_in_flight = await sampler.stop()
        machine = machine_busy_s() - machine_before
        window = time.perf_counter() - window0
        after = tree_cpu(roots) | pg.cpu() | {"bench (this process)": time.process_time()}
        stats_after = [await b.stats() for b in backends]
    finally:
        procs.stop()
    wall = outcome.wall_s
    requests = [
        int(a["requests"] - b["requests"]) for a, b in zip(stats_after, stats_before, strict=True)
    ]
    calls = sum(requests)
    stages = stage_rows(outcome.run)
    generate = next(s for s in stages if s["stage"] == "generate")
    steady = outcome.rate_between("judge", 0.1, 0.9)
    cpu = cpu_delta(before, after)
    return {
        "replicas": n,
        "cap_per_replica": cap,
        "delay_ms": delay_s * 1000,
        "prompts": n_prompts,
        "state": runner_pb2.RunState.Name(outcome.run.state).removeprefix("RUN_STATE_"),
        "wall_s": wall,
        "judge_calls": calls,
        "x_calls_per_s": n_prompts / wall,
        "x_steady_calls_per_s": steady,
        "ideal_calls_per_s": n * cap / delay_s,
        "generate_all_cached": generate["cached"] == generate["total"],
        "stages": stages,
        "last_errors": list(outcome.run.progress.last_errors),
        "calls_per_replica": requests,
        "share_per_replica": [r / calls if calls else 0.0 for r in requests],
        "most_in_flight_per_backend": [int(s["most_in_flight"]) for s in stats_after],
        # Sampled every 0.1 s over the run; c when the replicas keep their backends full.
        "mean_in_flight_per_backend": list(mean_in_flight.values()),
        "dns_queries": resolver.queries,
        "start_run_s": outcome.start_run_s,
        "watch_reconnects": outcome.watch_reconnects,
        "stage_done_at_s": outcome.stage_done_at(),
        "cpu_s": cpu,
        "cpu_window_s": window,
        "cpu_cores": {k: v / window for k, v in cpu.items()},
        "machine_busy_cores": machine / window,
        "settings": overrides,
    }


def _print(r: dict[str, Any], x1: dict[str, Any] | None) -> None:
    n = r["replicas"]
    eff = r["x_calls_per_s"] / (n * x1["x_calls_per_s"]) if x1 else float("nan")
    steady1 = x1["x_steady_calls_per_s"] if x1 else None
    steady = r["x_steady_calls_per_s"]
    eff_steady = steady / (n * steady1) if steady and steady1 else float("nan")
    shares = " ".join(f"{s:.2f}" for s in r["share_per_replica"])
    most = " ".join(
        f"{m:.1f}/{h}"
        for m, h in zip(
            r["mean_in_flight_per_backend"], r["most_in_flight_per_backend"], strict=True
        )
    )
    print(
        f"{n:>3}{r['prompts']:>8}{r['wall_s']:>8.1f}{r['x_calls_per_s']:>8.1f}"
        f"{steady or float('nan'):>9.1f}{r['ideal_calls_per_s']:>7.0f}{eff:>8.3f}"
        f"{eff_steady:>9.3f}  {r['state']:<10}shares {shares}; in flight mean/most {most};"
        f" dns {r['dns_queries']}; generate cached {r['generate_all_cached']}"
    )
    for e in r["last_errors"][-3:]:
        print(f"  error: {e}")
    window = r["cpu_window_s"]
    print(cpu_table(r["cpu_s"], window, r["machine_busy_cores"] * window), flush=True)


HEADER = (
    f"{'N':>3}{'prompts':>8}{'wall s':>8}{'X(N)':>8}{'X steady':>9}{'ideal':>7}"
    f"{'X/(N·X1)':>8}{' steady/':>9}"
)


async def main(
    ns: list[int], cap: int, delay_s: float, per_replica: int, overrides: dict[str, str]
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    all_prompts = prompts(per_replica * max(ns), f"scale{int(time.time())}")
    dns, resolver, dns_port = start_dns()
    try:
        with workdir() as tmp:
            pg = Postgres(tmp / "pg")
            db_url = pg.database("scale")
            base = Processes(tmp, bench_auth(tmp))
            try:
                gen_llm = FakeLlm("llm-generate", 0.0, tmp)
                base.add(gen_llm.proc)
                generator = f"127.0.0.1:{free_port()}"
                base.start(
                    "generator",
                    "harmeval_generator",
                    {
                        "HARMEVAL_DATABASE_URL": with_application_name(db_url, "generator"),
                        "HARMEVAL_DATA_DIR": str(tmp),
                        "HARMEVAL_GENERATOR_ADDRESS": generator,
                        "HARMEVAL_GENERATOR_PROMETHEUS_PORT": str(free_port()),
                        "HARMEVAL_GENERATOR_MODELS_FILE": str(
                            models_file(tmp / "models.yaml", gen_llm.base_url, [MODEL], 64)
                        ),
                        **overrides,
                    },
                )
                await base.wait_healthy({"generator": generator})
                params = study_models([MODEL])[0].params
                warm = await warm_up(generator, all_prompts, params, base.auth.client())
                print(f"warm-up: {len(all_prompts)} answers generated in {warm:.1f} s")
                print(HEADER, flush=True)
                for n in ns:
                    results.append(
                        await run_replicas(
                            n,
                            cap=cap,
                            delay_s=delay_s,
                            n_prompts=per_replica * n,
                            all_prompts=all_prompts,
                            tmp=tmp,
                            db_url=db_url,
                            base_procs=base,
                            pg=pg,
                            generator_address=generator,
                            dns_port=dns_port,
                            resolver=resolver,
                            overrides=overrides,
                        )
                    )
                    x1 = next((r for r in results if r["replicas"] == 1), None)
                    _print(results[-1], x1)
            finally:
                base.stop()
                pg.cleanup()
    finally:
        dns.stop()
    x1 = next((r for r in results if r["replicas"] == 1), None)
    for r in results:
        if x1:
            r["efficiency"] = r["x_calls_per_s"] / (r["replicas"] * x1["x_calls_per_s"])
            if r["x_steady_calls_per_s"] and x1["x_steady_calls_per_s"]:
                r["efficiency_steady"] = r["x_steady_calls_per_s"] / (
                    r["replicas"] * x1["x_steady_calls_per_s"]
                )
    return {
        "label": "judge replicas behind one DNS name, each with a backend capped at c, "
        "driven by the runner; X = verdict calls/s over a study run",
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
        },
        "target_efficiency": 0.9,
        "warm_up_s": warm,
        "results": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--cap", type=int, default=16)
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--prompts-per-replica", type=int, default=1200)
    parser.add_argument("--quick", action="store_true", help="600 prompts per replica")
    parser.add_argument("--set", action="append", default=[], metavar="HARMEVAL_X=VALUE")
    parser.add_argument("--out", type=Path, default=RESULTS / "runner_scale_out.json")
    args = parser.parse_args()
    per_replica = 600 if args.quick else args.prompts_per_replica
    sets = dict(s.split("=", 1) for s in args.set)
    bench_started = time.perf_counter()
    res = asyncio.run(
        main(
            [int(n) for n in args.replicas.split(",")],
            args.cap,
            args.delay_ms / 1000,
            per_replica,
            sets,
        )
    )
    res["bench_wall_s"] = time.perf_counter() - bench_started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"bench took {res['bench_wall_s']:.1f} s")
