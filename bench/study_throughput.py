"""End-to-end study throughput: a study run through the runner service against fixed-delay
OpenAI-compatible servers for generation and judging, versus the best time the services
allow.

Processes (bench/study_stack.py): one embedded Postgres (a fresh database per case, so
nothing is cached), two fixed-delay servers (`llm-generate` for the small models,
`llm-judge` for the LLM judges; 200 ms each), and the four services (generator, judge,
metrics, runner) as subprocesses with their default settings, except: the generator's models
file serves each small model as `backend: openai` on `llm-generate` with `max_concurrency: 64`,
and the judge uses `HARMEVAL_JUDGE_LLM_TRANSPORT=aiohttp`. This process calls StartRun and
follows WatchRun; the time measured runs from just before StartRun to the run's end_time.

Cases: 400 prompts x 2 models x 1 listwise judge, and 5,000 prompts x 2 models x 2 listwise
judges (the second an `llm` judge defined with the study, on the same endpoint: both share the
judge service's one limiter per endpoint, 256). Ideal time = the slowest stage's items x delay
/ its concurrency, the concurrency being what the services allow:

  generate: items = prompts x models; concurrency = sum of the models' max_concurrency
            (64 each: the generator holds at most that many requests per model in flight, over
            all calls; the runner offers 32 jobs x 8 prompts = 256 per model, more than that)
  judge:    calls = prompts x judges (a listwise judge makes one call per prompt, whatever the
            number of answers); concurrency = HARMEVAL_JUDGE_LLM_MAX_CONCURRENCY (256) per
            endpoint, and both judges use one endpoint

Ratio = ideal / measured; target >= 0.8. With it, "old-cli-loop": the CLI's loop before the
runner (4 prompts per Generate call, one call at a time per model, then 4 Judge calls at
once), emulated with the generator's and judge's stubs on the 400-prompt case, on the same
services and machine.

Which process bends the curve: CPU seconds per process tree over the run, Postgres split by
client (each service connects with its name as application_name); "cores" = CPU s / wall s,
and the whole machine's busy cores (anyone's work, so a busy machine shows). "floor" = all
our processes' CPU seconds / os.cpu_count(): the shortest run this machine allows at these
CPU costs per item; "r.mach" = max(ideal, floor) / measured, how close the run came to what
the machine, rather than the design, allows. "mean requests in flight" at each server
(sampled every 0.1 s): the ideal keeps it at the stage's concurrency.

Writes bench/results/study_throughput.json (or --out).

    .venv/bin/python bench/study_throughput.py [--quick] [--cases 400x2x1,5000x2x2]
        [--no-baseline] [--delay-ms 200] [--set HARMEVAL_RUNNER_CHUNK_SIZE=16 ...]

--quick: the 400-prompt case and its baseline only. --set: any service setting, given to all
four services (to try runner settings: chunk size, jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from bench_auth import BenchAuth, bench_auth
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
from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc
from harmeval.judge.v1 import judge_pb2, judge_pb2_grpc
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from harmeval.runner.v1 import runner_pb2
from harmeval.settings import CommonSettings

GENERATE_CONCURRENCY = 64  # per small model (models file max_concurrency)
JUDGE_CONCURRENCY = 256  # HARMEVAL_JUDGE_LLM_MAX_CONCURRENCY's default, per endpoint
JUDGE = "bench-listwise"
# The old CLI loop (client/harmeval_client/workflow.py before the runner).
OLD_GENERATE_BATCH = 4
OLD_JUDGE_CONCURRENCY = 4


@dataclass(frozen=True)
class Case:
    prompts: int
    models: int
    judges: int

    @property
    def name(self) -> str:
        return f"{self.prompts}x{self.models}x{self.judges}"

    @classmethod
    def parse(cls, text: str) -> Case:
        p, m, j = (int(x) for x in text.split("x"))
        return cls(p, m, j)

    def model_names(self) -> list[str]:
        return [f"small-{i + 1}" for i in range(self.models)]

    def judge_names(self) -> list[str]:
        return [JUDGE] + [f"{JUDGE}-{i + 2}" for i in range(self.judges - 1)]

    def ideal(self, delay_s: float) -> dict[str, float]:
        generate = self.prompts * self.models * delay_s / (GENERATE_CONCURRENCY * self.models)
        judge = self.prompts * self.judges * delay_s / JUDGE_CONCURRENCY
        return {"generate": generate, "judge": judge, "slowest": max(generate, judge)}


@dataclass
class Stack:
    processes: Processes
    llms: dict[str, FakeLlm]
    addresses: dict[str, str]
    pg: Postgres
    auth: BenchAuth

    def cpu(self) -> dict[str, float]:
        own = {"bench (this process)": time.process_time()}
        return tree_cpu(self.processes.pids()) | self.pg.cpu() | own

    async def backend_stats(self) -> dict[str, dict[str, float]]:
        return {name: await llm.stats() for name, llm in self.llms.items()}


async def start_stack(
    case: Case,
    db_url: str,
    pg: Postgres,
    tmp: Path,
    delay_s: float,
    runner: bool,
    overrides: dict[str, str],
) -> Stack:
    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    auth = bench_auth(tmp)
    procs = Processes(logs, auth)
    llms = {
        "llm-generate": FakeLlm("llm-generate", delay_s, logs),
        "llm-judge": FakeLlm("llm-judge", delay_s, logs),
    }
    for llm in llms.values():
        procs.add(llm.proc)
    names = ["generator", "judge", "metrics"] + (["runner"] * runner)
    addresses = {n: f"127.0.0.1:{free_port()}" for n in names}
    common = {"HARMEVAL_DATA_DIR": str(tmp)}
    path = models_file(
        tmp / "models.yaml",
        llms["llm-generate"].base_url,
        case.model_names(),
        GENERATE_CONCURRENCY,
    )
    env = {
        "generator": {
            "HARMEVAL_GENERATOR_ADDRESS": addresses["generator"],
            "HARMEVAL_GENERATOR_PROMETHEUS_PORT": str(free_port()),
            "HARMEVAL_GENERATOR_MODELS_FILE": str(path),
        },
        "judge": {
            "HARMEVAL_JUDGE_ADDRESS": addresses["judge"],
            "HARMEVAL_JUDGE_PROMETHEUS_PORT": str(free_port()),
            "HARMEVAL_JUDGE_LLM_BASE_URL": llms["llm-judge"].base_url,
            "HARMEVAL_JUDGE_LLM_MODEL": "bench-judge",
            "HARMEVAL_JUDGE_LLM_NAME": JUDGE,
            "HARMEVAL_JUDGE_LLM_TRANSPORT": "aiohttp",
            "HARMEVAL_JUDGE_LLM_MAX_CONCURRENCY": str(JUDGE_CONCURRENCY),
        },
        "metrics": {
            "HARMEVAL_METRICS_ADDRESS": addresses["metrics"],
            "HARMEVAL_METRICS_PROMETHEUS_PORT": str(free_port()),
            "HARMEVAL_METRICS_GENERATOR_TARGET": addresses["generator"],
            "HARMEVAL_METRICS_JUDGE_TARGET": addresses["judge"],
        },
        "runner": {
            "HARMEVAL_RUNNER_ADDRESS": addresses.get("runner", ""),
            "HARMEVAL_RUNNER_PROMETHEUS_PORT": str(free_port()),
            "HARMEVAL_RUNNER_GENERATOR_TARGET": addresses["generator"],
            "HARMEVAL_RUNNER_JUDGE_TARGET": addresses["judge"],
            "HARMEVAL_RUNNER_METRICS_TARGET": addresses["metrics"],
        },
    }
    # Migrations first, one service at a time (each owns a schema; starting all four at once
    # on 2 cores only makes each slower).
    try:
        for name in names:
            url = with_application_name(db_url, name)
            procs.start(
                name,
                f"harmeval_{name}",
                {**common, "HARMEVAL_DATABASE_URL": url, **env[name], **overrides},
            )
            await procs.wait_healthy({name: addresses[name]})
    except BaseException:
        procs.stop()
        raise
    return Stack(procs, llms, addresses, pg, auth)


def definition(case: Case, tag: str) -> runner_pb2.StudyDefinition:
    judges = case.judge_names()
    extra = [
        json.dumps(
            {
                "name": j,
                "family": "llm",
                "protocol": "listwise",
                "backend": "default",  # the built-in judge's backend: one limiter
                "model": f"bench-judge-{j}",
            }
        )
        for j in judges[1:]
    ]
    return runner_pb2.StudyDefinition(
        name=f"bench-{tag}",
        prompts=prompts(case.prompts, tag),
        models=study_models(case.model_names()),
        judges=judges,
        judge_definitions=extra,
    )


async def old_cli_loop(
    addresses: dict[str, str], d: runner_pb2.StudyDefinition, client: CommonSettings
) -> dict[str, Any]:
    """The CLI's loop before the runner, on the stubs: register, generate 4 prompts per call
    one call at a time per model, then judge with 4 Judge calls at once."""
    limit = 64 * 1024 * 1024
    opts = [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
    async with (
        raw_channel(addresses["generator"], client, opts) as g_ch,
        raw_channel(addresses["judge"], client, opts) as j_ch,
        raw_channel(addresses["metrics"], client, opts) as m_ch,
    ):
        generator = generator_pb2_grpc.GeneratorServiceStub(g_ch)
        judge = judge_pb2_grpc.JudgeServiceStub(j_ch)
        metrics = metrics_pb2_grpc.MetricsServiceStub(m_ch)
        started = time.perf_counter()
        for text in d.judge_definitions:
            await judge.DefineJudge(judge_pb2.DefineJudgeRequest(definition=text))
        await generator.ListModels(generator_pb2.ListModelsRequest())
        await judge.ListJudges(judge_pb2.ListJudgesRequest())
        registered = await metrics.RegisterStudy(
            metrics_pb2.RegisterStudyRequest(
                name=d.name, prompts=d.prompts, models=d.models, judges=d.judges
            )
        )
        ps = list(registered.prompts)
        answers: list[list[common_pb2.Generation]] = [[] for _ in ps]
        for m in d.models:
            for first in range(0, len(ps), OLD_GENERATE_BATCH):
                reply = await generator.Generate(
                    generator_pb2.GenerateRequest(
                        model=m.model,
                        prompts=ps[first : first + OLD_GENERATE_BATCH],
                        params=m.params,
                    )
                )
                for i, g in enumerate(reply.generations):
                    answers[first + i].append(g)
        generated = time.perf_counter() - started
        sem = asyncio.Semaphore(OLD_JUDGE_CONCURRENCY)
        statuses: list[int] = []

        async def one(i: int, name: str) -> None:
            async with sem:
                reply = await judge.Judge(
                    judge_pb2.JudgeRequest(
                        judge=name,
                        prompt=ps[i],
                        answers=[
                            judge_pb2.Answer(generation_id=g.generation_id, text=g.text)
                            for g in answers[i]
                        ],
                    )
                )
            statuses.extend(j.status for j in reply.judgments)

        await asyncio.gather(*(one(i, j) for i in range(len(ps)) for j in d.judges))
        wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "stage_done_at_s": {"generate": generated, "judge": wall},
        "verdicts": len(statuses),
        "unscorable": sum(s == common_pb2.JUDGMENT_STATUS_UNSCORABLE for s in statuses),
    }


async def run_case(
    pg: Postgres,
    case: Case,
    mode: str,
    index: int,
    tmp: Path,
    delay_s: float,
    overrides: dict[str, str],
) -> dict[str, Any]:
    tag = f"c{index}_{case.name}_{mode.replace('-', '_')}"
    db_url = pg.database(tag)
    case_dir = tmp / tag
    stack = await start_stack(case, db_url, pg, case_dir, delay_s, mode == "runner", overrides)
    try:
        d = definition(case, tag)
        before, stats_before = stack.cpu(), await stack.backend_stats()
        machine_before = machine_busy_s()
        window0 = time.perf_counter()
        sampler = InFlightSampler(stack.llms)
        sampler.start()
        extra: dict[str, Any] = {}
        if mode == "runner":
            outcome = await run_study(stack.addresses["runner"], d, stack.auth.client())
            wall = outcome.wall_s
            run = outcome.run
            extra = {
                "watched_s": outcome.watched_s,
                "start_run_s": outcome.start_run_s,
                "watch_reconnects": outcome.watch_reconnects,
                "state": runner_pb2.RunState.Name(run.state).removeprefix("RUN_STATE_"),
                "stage_done_at_s": outcome.stage_done_at(),
                "generate_items_per_s_10_90": outcome.rate_between("generate", 0.1, 0.9),
                "judge_verdicts_per_s_10_90": outcome.rate_between("judge", 0.1, 0.9),
                "stages": stage_rows(run),
                "last_errors": list(run.progress.last_errors),
            }
            unscorable = sum(s["unscorable"] for s in extra["stages"] if s["stage"] == "judge")
        else:
            old = await old_cli_loop(stack.addresses, d, stack.auth.client())
            wall = old["wall_s"]
            extra = {"stage_done_at_s": old["stage_done_at_s"], "state": "done"}
            unscorable = old["unscorable"]
        mean_in_flight = await sampler.stop()
        machine = machine_busy_s() - machine_before
        window = time.perf_counter() - window0
        after, stats_after = stack.cpu(), await stack.backend_stats()
    finally:
        stack.processes.stop()
    requests = {
        n: int(stats_after[n]["requests"] - stats_before[n]["requests"]) for n in stats_after
    }
    ideal = case.ideal(delay_s)
    cpu = cpu_delta(before, after)
    expected = {
        "llm-generate": case.prompts * case.models,
        "llm-judge": case.prompts * case.judges,
    }
    floor = sum(cpu.values()) / (os.cpu_count() or 1)
    return {
        "case": case.name,
        "mode": mode,
        "prompts": case.prompts,
        "models": case.models,
        "judges": case.judge_names(),
        "delay_ms": delay_s * 1000,
        "generate_items": case.prompts * case.models,
        "generate_concurrency": GENERATE_CONCURRENCY * case.models,
        "judge_calls": case.prompts * case.judges,
        "judge_concurrency": JUDGE_CONCURRENCY,
        "ideal_generate_s": ideal["generate"],
        "ideal_judge_s": ideal["judge"],
        "ideal_s": ideal["slowest"],
        "wall_s": wall,
        "ratio": ideal["slowest"] / wall,
        "backend_requests": requests,
        "backend_requests_expected": expected,
        "backend_most_in_flight": {n: s["most_in_flight"] for n, s in stats_after.items()},
        # Sampled every 0.1 s from StartRun to done; the ideal keeps it at the concurrency.
        "backend_mean_in_flight": mean_in_flight,
        "unscorable": unscorable,
        "checks_ok": requests == expected and unscorable == 0,
        "cpu_s": cpu,
        "cpu_window_s": window,
        "cpu_cores": {n: s / window for n, s in cpu.items()},
        "machine_busy_cores": machine / window,
        # The shortest run this machine allows at these CPU costs (all cores busy with it).
        "cpu_floor_s": floor,
        "ratio_to_machine_bound": max(ideal["slowest"], floor) / wall,
        "settings": overrides,
        **extra,
    }


def _print_case(r: dict[str, Any]) -> None:
    done = r.get("stage_done_at_s", {})
    print(
        f"{r['case']:<10}{r['mode']:<14}{r['ideal_generate_s']:>8.2f}{r['ideal_judge_s']:>8.2f}"
        f"{r['wall_s']:>8.1f}{r['ratio']:>7.3f}{r['cpu_floor_s']:>7.1f}"
        f"{r['ratio_to_machine_bound']:>7.3f}{done.get('generate', float('nan')):>8.1f}"
        f"{done.get('judge', float('nan')):>8.1f}  {r['state']:<10}"
        f"{'ok' if r['checks_ok'] else 'CHECK FAILED'}"
    )
    held = r["backend_mean_in_flight"]
    print(
        f"  mean requests in flight: generate {held['llm-generate']:.0f} of"
        f" {r['generate_concurrency']}, judge {held['llm-judge']:.0f} of {r['judge_concurrency']}"
    )
    if not r["checks_ok"]:
        print(
            f"  requests {r['backend_requests']} expected {r['backend_requests_expected']};"
            f" unscorable {r['unscorable']}"
        )
    for e in r.get("last_errors", [])[-3:]:
        print(f"  error: {e}")
    window = r["cpu_window_s"]
    print(cpu_table(r["cpu_s"], window, r["machine_busy_cores"] * window), flush=True)


HEADER = (
    f"{'case':<10}{'mode':<14}{'ideal g':>8}{'ideal j':>8}{'wall s':>8}{'ratio':>7}"
    f"{'floor':>7}{'r.mach':>7}{'gen at':>8}{'judg at':>8}  state     checks"
)


async def main(
    cases: list[Case], baseline: bool, delay_s: float, overrides: dict[str, str]
) -> dict[str, Any]:
    results = []
    print(HEADER, flush=True)
    with workdir() as tmp:
        pg = Postgres(tmp / "pg")
        try:
            plan = [(c, "runner") for c in cases]
            if baseline:
                plan += [(c, "old-cli-loop") for c in cases if c.prompts <= 400]
            for i, (case, mode) in enumerate(plan):
                try:
                    results.append(await run_case(pg, case, mode, i, tmp, delay_s, overrides))
                except (grpc.aio.AioRpcError, RuntimeError) as exc:
                    # One case failing (a service that died, a stream cut) keeps the others.
                    results.append({"case": case.name, "mode": mode, "error": repr(exc)})
                    print(f"{case.name:<10}{mode:<14}FAILED: {exc!r}", flush=True)
                    continue
                _print_case(results[-1])
        finally:
            pg.cleanup()
    by = {(r["case"], r["mode"]): r for r in results}
    for r in results:
        old = by.get((r["case"], "old-cli-loop"))
        if r["mode"] == "runner" and old and "error" not in r and "error" not in old:
            r["speedup_vs_old_cli_loop"] = old["wall_s"] / r["wall_s"]
    return {
        "label": "end-to-end study run through the runner service, fixed-delay servers",
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
        },
        "concurrency_assumed": {
            "generate_per_model": GENERATE_CONCURRENCY,
            "judge_per_endpoint": JUDGE_CONCURRENCY,
            "why": "the generator's max_concurrency per model (models file) and the judge's "
            "HARMEVAL_JUDGE_LLM_MAX_CONCURRENCY per endpoint: what the services allow",
        },
        "second_judge": "an llm listwise judge defined with the study (judge_definitions), on "
        "the built-in judge's endpoint, so both share its limiter",
        "target_ratio": 0.8,
        "results": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="400x2x1,5000x2x2")
    parser.add_argument("--quick", action="store_true", help="the 400-prompt case only")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--set", action="append", default=[], metavar="HARMEVAL_X=VALUE")
    parser.add_argument("--out", type=Path, default=RESULTS / "study_throughput.json")
    args = parser.parse_args()
    chosen = [Case.parse(c) for c in args.cases.split(",")]
    if args.quick:
        chosen = [c for c in chosen if c.prompts <= 400] or [Case(400, 2, 1)]
    sets = dict(s.split("=", 1) for s in args.set)
    bench_started = time.perf_counter()
    res = asyncio.run(main(chosen, not args.no_baseline, args.delay_ms / 1000, sets))
    res["bench_wall_s"] = time.perf_counter() - bench_started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    for r in res["results"]:
        if "speedup_vs_old_cli_loop" in r:
            print(f"{r['case']}: runner {r['speedup_vs_old_cli_loop']:.1f}x the old CLI loop")
    print(f"bench took {res['bench_wall_s']:.1f} s")
