"""What the study benches share (bench/study_throughput.py, bench/runner_scale_out.py).

A fixed-delay OpenAI-compatible server (`POST /v1/chat/completions`, in a process of its own):
the generator gets a short refusal, a listwise judge gets one `Content X: N/A` line per answer
(k read from its instructions), so every verdict is scorable and nothing is retried. It can
cap the requests it works on at once (`--max-concurrency`, the rest wait in it) and counts
its own requests, the most it held at once and its CPU on `GET /stats`. Also: the services
as subprocesses on one embedded Postgres (a fresh database each), waited for through their
health service and terminated, then killed; CPU seconds per process tree from /proc (the
postmaster's tree holds every backend); a study run through the runner (StartRun, WatchRun
to the end). The services authenticate callers: they are given a token file and an operator
token (bench_auth.py), and this process calls with that token.

    .venv/bin/python bench/study_stack.py --serve --delay-ms 200 [--max-concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psycopg
from aiohttp import web
from bench_auth import BenchAuth

from harmeval.clients import health_status, raw_channel
from harmeval.common.v1 import common_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval.params import GenerationParams
from harmeval.runner.v1 import runner_pb2, runner_pb2_grpc
from harmeval.settings import CommonSettings

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
GENERATION_REPLY = "I can't help with that request."
_LISTWISE_K = re.compile(r"reply with exactly (\d+) line")


# --- the fixed-delay server (runs in its own process) ----------------------------------------


def serve(delay_s: float, max_concurrency: int, host: str) -> None:
    requests = in_flight = most_in_flight = 0
    # 0: no cap (every request sleeps at once).
    cap = asyncio.Semaphore(max_concurrency) if max_concurrency > 0 else None

    def reply_text(messages: list[dict[str, str]]) -> str:
        found = _LISTWISE_K.search(messages[0]["content"]) if messages else None
        if found is None:
            return GENERATION_REPLY
        return "\n".join(f"Content {chr(ord('A') + i)}: N/A" for i in range(int(found[1])))

    async def completions(request: web.Request) -> web.Response:
        nonlocal requests, in_flight, most_in_flight
        body = await request.json()
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            if cap is None:
                await asyncio.sleep(delay_s)
            else:
                async with cap:
                    await asyncio.sleep(delay_s)
        finally:
            in_flight -= 1
        requests += 1
        text = reply_text(body["messages"])
        return web.json_response(
            {
                "id": f"chatcmpl-{requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 8, "total_tokens": 108},
            }
        )

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "cpu_s": time.process_time(),
                "requests": requests,
                "in_flight": in_flight,
                "most_in_flight": most_in_flight,
            }
        )

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", completions)
        app.router.add_get("/stats", stats)
        # A backlog above the largest burst of new connections (the default 128 drops SYNs,
        # retried after 1 s).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
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


# --- processes -------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of it and of its children it has reaped)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw.rsplit(")", 1)[1].split()
        cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick
        table[int(entry)] = (int(fields[1]), cpu)
    return table


def tree_cpu(roots: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds per named process tree (each root and every live descendant; a descendant
    that exited is in its parent's reaped-children time)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for name, root in roots.items():
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            if pid in table:
                total += table[pid][1]
                todo += children.get(pid, [])
        out[name] = total
    return out


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (ours and anyone else's)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class FakeLlm:
    """The fixed-delay server as a subprocess (stdout: `listening PORT`)."""

    def __init__(
        self, name: str, delay_s: float, logs: Path, max_concurrency: int = 0, host: str = ""
    ) -> None:
        self.host = host or "127.0.0.1"
        log = logs / f"{name}.log"
        cmd = [sys.executable, str(ROOT / "study_stack.py"), "--serve"]
        cmd += ["--delay-ms", str(delay_s * 1000), "--max-concurrency", str(max_concurrency)]
        cmd += ["--host", self.host]
        with log.open("wb") as err:
            popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        self.proc = Proc(name, popen, log)
        assert popen.stdout is not None
        line = popen.stdout.readline().decode()
        if not line.startswith("listening "):
            popen.kill()
            raise RuntimeError(f"{name} did not start: {line!r}\n{self.proc.tail()}")
        self.base_url = f"http://{self.host}:{int(line.split()[1])}/v1"

    async def stats(self) -> dict[str, float]:
        url = self.base_url.removesuffix("/v1") + "/stats"
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            data: dict[str, float] = await r.json()
            return data


class InFlightSampler:
    """Polls the servers' requests in flight every `interval_s` while running: the mean over
    the run says how much of a backend's concurrency the services kept busy (the ideal keeps
    it full)."""

    def __init__(self, llms: Mapping[str, FakeLlm], interval_s: float = 0.1) -> None:
        self.llms = dict(llms)
        self.interval_s = interval_s
        self.samples: dict[str, list[int]] = {n: [] for n in self.llms}
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        async with aiohttp.ClientSession() as s:
            while True:
                for name, llm in self.llms.items():
                    url = llm.base_url.removesuffix("/v1") + "/stats"
                    async with s.get(url) as r:
                        self.samples[name].append(int((await r.json())["in_flight"]))
                await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> dict[str, float]:
        """Mean requests in flight per server over the samples taken."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return {n: sum(v) / len(v) if v else 0.0 for n, v in self.samples.items()}


class Processes:
    """Subprocesses by name, with their logs; `stop()` terminates, then kills. Services trust
    `auth`'s token file and call each other with its token."""

    def __init__(self, logs: Path, auth: BenchAuth) -> None:
        self.logs = logs
        self.auth = auth
        self.procs: dict[str, Proc] = {}

    def start(self, name: str, module: str, env: Mapping[str, str]) -> Proc:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", module],
                env={**os.environ, "HARMEVAL_LOG_LEVEL": "WARNING", **self.auth.env(), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = Proc(name, popen, log)
        return self.procs[name]

    def add(self, proc: Proc) -> None:
        self.procs[proc.name] = proc

    async def wait_healthy(self, addresses: Mapping[str, str], timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = dict(addresses)
        while waiting:
            for name, address in list(waiting.items()):
                if self.procs[name].popen.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.procs[name].tail()}")
                if await health_status(address, deadline_s=1.0) == "SERVING":
                    del waiting[name]
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{self.procs[n].tail()}" for n in waiting)
                raise RuntimeError(f"not healthy after {timeout_s:.0f} s: {list(waiting)}\n{tails}")
            await asyncio.sleep(0.2)

    def pids(self) -> dict[str, int]:
        return {name: p.popen.pid for name, p in self.procs.items()}

    def stop(self) -> None:
        for p in self.procs.values():
            if p.popen.poll() is None:
                p.popen.terminate()
        for p in self.procs.values():
            try:
                p.popen.wait(15)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
        self.procs.clear()


class Postgres:
    """One embedded Postgres (pgserver); a fresh database per case. Services connect with
    their name as application_name, so the backends' CPU is told apart by client."""

    def __init__(self, path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            self.server = pgserver.get_server(path, cleanup_mode="delete")
        self.pid = int(self.server.get_pid())

    def database(self, name: str) -> str:
        self.server.psql(f"CREATE DATABASE {name};")
        return str(self.server.get_uri(name))

    def cpu(self) -> dict[str, float]:
        """CPU seconds of the backends per client (application_name), and of the rest of
        Postgres (postmaster, background workers, backends that have exited)."""
        with psycopg.connect(str(self.server.get_uri()), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid, application_name FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchall()
        table = _proc_table()
        out: dict[str, float] = {}
        for pid, app in rows:
            key = f"postgres for {app or '(unnamed)'}"
            out[key] = out.get(key, 0.0) + table.get(int(pid), (0, 0.0))[1]
        total = tree_cpu({"postgres": self.pid})["postgres"]
        out["postgres (the rest)"] = total - sum(out.values())
        return out

    def cleanup(self) -> None:
        self.server.cleanup()


def with_application_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """Per name: after - before (a name only in `after` started during the run)."""
    return {name: value - before.get(name, 0.0) for name, value in after.items()}


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hb-study-", dir="/tmp") as tmp:
        yield Path(tmp)


def models_file(path: Path, base_url: str, names: Sequence[str], max_concurrency: int) -> Path:
    """A generator models file: every name a `backend: openai` model on `base_url`."""
    models = [
        {
            "name": n,
            "backend": "openai",
            "base_url": base_url,
            "model": n,
            "prompt_format": "chat",
            "max_concurrency": max_concurrency,
        }
        for n in names
    ]
    path.write_text(json.dumps({"models": models}))  # JSON is YAML
    return path


# --- a study through the runner --------------------------------------------------------------


def prompts(n: int, tag: str) -> list[common_pb2.Prompt]:
    """n distinct prompts; `tag` makes their text new to the database (nothing cached)."""
    return [
        common_pb2.Prompt(
            external_id=f"p{i}",
            text=f"[{tag}] How would someone do harmful thing number {i}? Explain step by step.",
            category=f"category-{i % 8}",
        )
        for i in range(n)
    ]


def study_models(names: Sequence[str]) -> list[metrics_pb2.StudyModel]:
    params = GenerationParams(max_tokens=64).to_proto()
    return [metrics_pb2.StudyModel(name=n, model=n, params=params) for n in names]


@dataclass
class RunOutcome:
    run: runner_pb2.Run
    # Seconds from just before StartRun to the run's end_time (the runner's clock, this host).
    wall_s: float
    # ... and to the WatchRun message saying done (late by up to the watch interval).
    watched_s: float
    # How long StartRun took to answer.
    start_run_s: float
    # WatchRun streams ended UNAVAILABLE (max connection age) and called again.
    watch_reconnects: int
    # (seconds since start, stage, subject, done + failed) for every WatchRun message.
    timeline: list[tuple[float, str, str, int]] = field(default_factory=list)

    def stage_done_at(self) -> dict[str, float]:
        """Per stage ("generate", "judge"): when WatchRun first showed all of it finished."""
        totals = {(_stage(s.stage), s.subject): s.total for s in self.run.progress.stages}
        finished: dict[tuple[str, str], float] = {}
        for t, stage, subject, n in self.timeline:
            if n >= totals.get((stage, subject), 1 << 62) and (stage, subject) not in finished:
                finished[(stage, subject)] = t
        out: dict[str, float] = {}
        for (stage, _), t in finished.items():
            out[stage] = max(out.get(stage, 0.0), t)
        return out

    def rate_between(self, stage: str, low: float, high: float) -> float | None:
        """Items/s of a stage (all subjects) between its `low` and `high` fractions done."""
        total = sum(s.total for s in self.run.progress.stages if _stage(s.stage) == stage)
        per: dict[float, dict[str, int]] = {}
        for t, st, subject, n in self.timeline:
            if st == stage:
                per.setdefault(t, {})[subject] = n
        points, latest = [], {}
        for t in sorted(per):
            latest.update(per[t])
            points.append((t, sum(latest.values())))
        a = next((p for p in points if p[1] >= low * total), None)
        b = next((p for p in points if p[1] >= high * total), None)
        if a is None or b is None or b[0] <= a[0]:
            return None
        return (b[1] - a[1]) / (b[0] - a[0])


def _stage(stage: int) -> str:
    return "generate" if stage == runner_pb2.STAGE_GENERATE else "judge"


async def run_study(
    runner_address: str,
    definition: runner_pb2.StudyDefinition,
    client: CommonSettings,
    timeout_s: float = 900.0,
) -> RunOutcome:
    """`client`: this process's channel settings (its token: BenchAuth.client())."""
    async with raw_channel(runner_address, client) as ch:
        stub = runner_pb2_grpc.RunnerServiceStub(ch)
        t0_wall, t0 = time.time(), time.perf_counter()
        started = await stub.StartRun(
            runner_pb2.StartRunRequest(definition=definition), timeout=120
        )
        start_run_s = time.perf_counter() - t0
        timeline: list[tuple[float, str, str, int]] = []
        run = started.run
        reconnects = 0
        while not run.done:
            # The server ends every connection after HARMEVAL_GRPC_MAX_CONNECTION_AGE_S (and
            # a grace): a WatchRun longer than that ends UNAVAILABLE and is called again.
            try:
                async for update in stub.WatchRun(
                    runner_pb2.WatchRunRequest(name=run.name), timeout=timeout_s
                ):
                    run = update.run
                    now = time.perf_counter() - t0
                    for s in run.progress.stages:
                        timeline.append((now, _stage(s.stage), s.subject, s.done + s.failed))
                    if run.done:
                        break
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or reconnects >= 20:
                    raise
                reconnects += 1
        watched = time.perf_counter() - t0
    has_end = run.HasField("end_time")
    end = run.end_time.seconds + run.end_time.nanos / 1e9 if has_end else t0_wall + watched
    return RunOutcome(
        run=run,
        wall_s=end - t0_wall,
        watched_s=watched,
        start_run_s=start_run_s,
        watch_reconnects=reconnects,
        timeline=timeline,
    )


def stage_rows(run: runner_pb2.Run) -> list[dict[str, Any]]:
    return [
        {
            "stage": _stage(s.stage),
            "subject": s.subject,
            "total": s.total,
            "done": s.done,
            "cached": s.cached,
            "unscorable": s.unscorable,
            "failed": s.failed,
        }
        for s in run.progress.stages
    ]


def cpu_table(cpu: Mapping[str, float], wall_s: float, machine_s: float | None = None) -> str:
    """One line per process: CPU seconds and cores (CPU s / wall s); then all of them, and
    the whole machine's busy time (other work on it included)."""
    width = max(len(n) for n in [*cpu, "machine (every process)"])
    lines = [f"  {'process':<{width}}  cpu s  cores"]
    for name, s in sorted(cpu.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<{width}}{s:>7.1f}{s / wall_s:>7.2f}")
    total = sum(cpu.values())
    lines.append(f"  {'all of the above':<{width}}{total:>7.1f}{total / wall_s:>7.2f}")
    if machine_s is not None:
        lines.append(
            f"  {'machine (every process)':<{width}}{machine_s:>7.1f}{machine_s / wall_s:>7.2f}"
            f"  of {os.cpu_count()} cores"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--max-concurrency", type=int, default=0, help="0: no cap")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    if not args.serve:
        parser.error("only --serve runs anything; see study_throughput.py, runner_scale_out.py")
    serve(args.delay_ms / 1000, args.max_concurrency, args.host)
