"""RunnerService: study runs as long-running operations (AIP-151), and the worker that does
their work.

Each replica serves the API and, unless told not to, works on jobs from the shared queue. A
run's state lives in Postgres: any replica answers for any run, and a run goes on when the
replica that started it is gone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp
from pgqueuer.core.qm import QueueManager
from pgqueuer.domain.models import Context as JobContext
from pgqueuer.domain.models import Job
from pgqueuer.domain.types import Channel
from prometheus_client import Gauge
from psycopg_pool import AsyncConnectionPool

from harmeval.clients import PASSED_THROUGH, call_owner, channel
from harmeval.generator.v1 import generator_pb2
from harmeval.generator.v1.generator_pb2_grpc import GeneratorServiceStub
from harmeval.judge.v1 import judge_pb2
from harmeval.judge.v1.judge_pb2_grpc import JudgeServiceStub
from harmeval.metrics.v1 import metrics_pb2
from harmeval.metrics.v1.metrics_pb2_grpc import MetricsServiceStub
from harmeval.params import GenerationParams
from harmeval.runner.v1 import runner_pb2, runner_pb2_grpc
from harmeval.server import Servicer, ServiceSpec, require_ready
from harmeval.validation import listed, name_problems
from harmeval_runner import queue
from harmeval_runner.settings import RunnerSettings
from harmeval_runner.store import (
    CANCELLED,
    GENERATE,
    JUDGE,
    RUNNING,
    SCHEMA,
    PromptRow,
    RunModel,
    RunnerStore,
    RunRow,
    Tally,
)
from harmeval_runner.work import Worker

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

QUEUE_DEPTH = Gauge(
    "harmeval_runner_queue_depth",
    "Jobs waiting in the run queue, per entrypoint (all replicas' queue: scale on this).",
    ["entrypoint"],
)
JOBS_IN_FLIGHT = Gauge(
    "harmeval_runner_jobs_in_flight", "Jobs being worked on now, by all replicas together."
)
JOBS_HELD = Gauge(
    "harmeval_runner_jobs_held",
    "Jobs parked after failing in a way the worker did not expect (their chunks are queued "
    "again; look at the runner's log).",
)
QUEUE_DEPTH_INTERVAL_S = 5.0

SPEC = ServiceSpec(
    name="runner",
    descriptor=runner_pb2.DESCRIPTOR.services_by_name["RunnerService"],
    add_to_server=runner_pb2_grpc.add_RunnerServiceServicer_to_server,
)

_STATES = {
    RUNNING: runner_pb2.RUN_STATE_RUNNING,
    "SUCCEEDED": runner_pb2.RUN_STATE_SUCCEEDED,
    "FAILED": runner_pb2.RUN_STATE_FAILED,
    CANCELLED: runner_pb2.RUN_STATE_CANCELLED,
}
_STAGES = {GENERATE: runner_pb2.STAGE_GENERATE, JUDGE: runner_pb2.STAGE_JUDGE}
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# Tokens are offsets this service gave out; anything larger is not one.
MAX_OFFSET = 10_000_000
# How often each replica looks for chunks of running runs that have neither results nor jobs.
REPAIR_INTERVAL_S = 60.0


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run_name(run_id: uuid.UUID) -> str:
    return f"runs/{run_id}"


def progress(run: RunRow, totals: Sequence[Tally], now: float) -> runner_pb2.RunProgress:
    """Per stage and model or judge: done, cached, unscorable, failed of how many; the rate
    since this attempt started and the time left at that rate."""
    found = {(t.stage, t.subject): t for t in totals}
    wanted = [(GENERATE, m["name"], run.n_prompts) for m in run.models] + [
        (JUDGE, j, run.n_prompts * len(run.models)) for j in run.judges
    ]
    stages = []
    finished = total = 0
    for stage, subject, n in wanted:
        t = found.get((stage, subject), Tally(stage=stage, subject=subject))
        stages.append(
            runner_pb2.StageProgress(
                stage=_STAGES[stage],
                subject=subject,
                total=n,
                done=t.done,
                cached=t.cached,
                unscorable=t.unscorable,
                failed=t.failed,
                prompt_tokens=t.prompt_tokens,
                completion_tokens=t.completion_tokens,
                cost_usd=t.cost_usd,
            )
        )
        finished += t.done + t.failed
        total += n
    end = run.ended_at.timestamp() if run.ended_at else now
    elapsed = max(end - run.started_at.timestamp(), 1e-3)
    rate = finished / elapsed
    left = max(total - finished, 0)
    eta = left / rate if rate > 0 and run.state == RUNNING else 0.0
    return runner_pb2.RunProgress(
        stages=stages, items_per_second=rate, eta_seconds=eta, last_errors=run.last_errors
    )


def definition_problems(d: runner_pb2.StudyDefinition) -> list[str]:
    problems = []
    if not d.name.strip():
        problems.append("definition.name: empty")
    if not d.prompts:
        problems.append("definition.prompts: no prompts")
    if not d.models:
        problems.append("definition.models: no small models")
    if not d.judges:
        problems.append("definition.judges: no judges")
    names = [m.name for m in d.models]
    if len(set(names)) != len(names):
        problems.append(f"definition.models: names must be unique, got {names}")
    if len(set(d.judges)) != len(d.judges):
        problems.append(f"definition.judges: names must be unique, got {list(d.judges)}")
    for i, m in enumerate(d.models):
        if not m.name.strip() or not m.model.strip():
            problems.append(f"definition.models[{i}]: name and model are required")
        problems += [
            f"definition.models[{i}].params: {p}"
            for p in GenerationParams.from_proto(m.params).validate()
        ]
    defined: dict[str, int] = {}
    for i, text in enumerate(d.judge_definitions):
        try:
            value = json.loads(text)
        except ValueError as exc:
            problems.append(f"definition.judge_definitions[{i}]: not JSON ({exc})"[:300])
            continue
        except RecursionError:
            problems.append(f"definition.judge_definitions[{i}]: nested too deeply")
            continue
        if not isinstance(value, dict) or value.get("name") not in d.judges:
            problems.append(
                f"definition.judge_definitions[{i}]: expected a JSON object whose name is one "
                "of the study's judges"
            )
        elif (first := defined.setdefault(value["name"], i)) != i:
            problems.append(
                f"definition.judge_definitions[{i}]: defines {value['name']!r} again "
                f"(judge_definitions[{first}])"[:300]
            )
    problems += name_problems(
        [("definition.name", d.name)]
        + [(f"definition.judges[{i}]", j) for i, j in enumerate(d.judges)]
        + [(f"definition.models[{i}].name", m.name) for i, m in enumerate(d.models)]
    )
    return problems


# A worker stopped by an error (the database gone) starts again after this, doubling up to
# the maximum while it keeps failing.
WORKER_RESTART_MIN_S = 1.0
WORKER_RESTART_MAX_S = 30.0
# A worker that ran this long before it stopped was healthy: it starts again without delay.
WORKER_HEALTHY_S = 60.0


class RunnerServicer(runner_pb2_grpc.RunnerServiceServicer, Servicer):
    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        # Fails start-up (not the first job) on a malformed HARMEVAL_RUNNER_JUDGE_LIMITS.
        self.judge_limits = settings.judge_limits()
        self.repo: RunnerStore | None = None
        self.pool: AsyncConnectionPool | None = None
        self.generator: GeneratorServiceStub | None = None
        self.judge: JudgeServiceStub | None = None
        self.metrics: MetricsServiceStub | None = None
        self.manager: QueueManager | None = None
        self._worker_connections: list[psycopg.AsyncConnection[Any]] = []
        # Set on SIGTERM: WatchRun streams end (UNAVAILABLE, clients reconnect elsewhere).
        self.draining = asyncio.Event()

    async def startup(self, stack: AsyncExitStack) -> None:
        s = self.settings
        self.pool = await self.database(stack, s, SCHEMA)
        async with self.pool.connection() as conn:
            await queue.install(conn)
        stubs = []
        for target in (s.runner_generator_target, s.runner_judge_target, s.runner_metrics_target):
            ch = channel(target, s)
            stack.push_async_callback(ch.close, None)
            stubs.append(ch)
        self.generator = GeneratorServiceStub(stubs[0])
        self.judge = JudgeServiceStub(stubs[1])
        self.metrics = MetricsServiceStub(stubs[2])
        store = RunnerStore(self.pool)
        if s.runner_worker:
            worker = Worker(store, self.generator, self.judge, s)
            await self._start_worker(stack, worker)
        self.repo = store
        for loop in (self._watch_queue_depth(), self._repair_runs()):
            task = asyncio.create_task(loop)
            stack.push_async_callback(_cancelled, task)

    def _manager(self, worker: Worker, conn: Any, listen: Any) -> QueueManager:
        """A queue manager on the given connections, with the worker's entrypoints."""
        s = self.settings
        manager = QueueManager(
            queue.queries(conn, listen), channel=Channel(queue.QUEUE_SETTINGS.channel)
        )

        async def generate(job: Job, ctx: JobContext) -> None:
            # CancelRun cancels the scope: the job's calls in flight are cancelled.
            with ctx.cancellation:
                await worker.generate(job)

        async def judge(job: Job, ctx: JobContext) -> None:
            with ctx.cancellation:
                await worker.judge_chunk(job)

        # Fleet-wide limits in jobs; a capped judge has an entrypoint of its own.
        entrypoints = [
            (queue.GENERATE_ENTRYPOINT, s.runner_generate_jobs, generate),
            (queue.JUDGE_ENTRYPOINT, s.runner_judge_jobs, judge),
        ] + [
            (
                queue.judge_entrypoint(name, {name}),
                cap,
                judge,
            )
            for name, cap in self.judge_limits.items()
        ]
        for name, limit, handler in entrypoints:
            # on_failure="hold": a job that fails in a way the worker did not expect stays
            # visible in the queue instead of vanishing.
            manager.entrypoint(
                name, concurrency_limit=limit, accepts_context=True, on_failure="hold"
            )(handler)
        return manager

    async def _work(self, worker: Worker) -> None:
        """The worker, started again when it stops on an error (the database went away: its
        connections are dead): jobs it held lose their heartbeat and are picked up again, so
        a run goes on once the database is back, without a restart of the process."""
        s = self.settings
        assert self.pool is not None
        backoff, started = WORKER_RESTART_MIN_S, time.monotonic()
        while not self.draining.is_set():
            # The queue manager's queries and its LISTEN each have a connection of their
            # own, outside the pool.
            self._worker_connections = []
            try:
                for _ in range(2):
                    self._worker_connections.append(
                        await psycopg.AsyncConnection.connect(
                            str(self.pool.conninfo), autocommit=True, connect_timeout=5
                        )
                    )
                manager = self.manager = self._manager(worker, *self._worker_connections)
                if self.draining.is_set():
                    return
                started = time.monotonic()
                await manager.run(
                    dequeue_timeout=timedelta(seconds=5),
                    batch_size=min(10, s.runner_worker_jobs // 2),
                    max_concurrent_tasks=s.runner_worker_jobs,
                    heartbeat_timeout=timedelta(seconds=s.runner_heartbeat_timeout_s),
                )
                return  # shut down (drain)
            except (psycopg.Error, OSError) as exc:
                # The database went away (anything else is a bug: it stops the worker for
                # good, and health says so).
                if time.monotonic() - started > WORKER_HEALTHY_S:
                    backoff = WORKER_RESTART_MIN_S
                logger.error("runner worker stopped: %r; starting again in %.0fs", exc, backoff)
            finally:
                for conn in self._worker_connections:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, WORKER_RESTART_MAX_S)

    async def _start_worker(self, stack: AsyncExitStack, worker: Worker) -> None:
        task = asyncio.create_task(self._work(worker))

        def worker_stopped(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                logger.error("runner worker stopped for good: %r", t.exception())
                self.healthy = False

        task.add_done_callback(worker_stopped)

        async def stop() -> None:
            # `drain` stopped the dequeuing; jobs in flight get the grace period to finish.
            self.draining.set()
            if self.manager is not None:
                self.manager.shutdown.set()
            done, _ = await asyncio.wait({task}, timeout=self.settings.grace_seconds)
            if not done:
                # Cut short: close the queue's connections first, so the jobs cannot be
                # marked done or deleted on the way out. They stay picked without heartbeats,
                # and another replica picks them up again (as after a kill -9): nothing lost.
                logger.warning("runner worker: jobs still running after the grace period")
                for conn in self._worker_connections:
                    with contextlib.suppress(Exception):
                        await conn.close()
                task.cancel()
            with contextlib.suppress(BaseException):
                await task

        stack.push_async_callback(stop)

    async def drain(self) -> None:
        self.draining.set()
        if self.manager is not None:
            self.manager.shutdown.set()

    async def _watch_queue_depth(self) -> None:
        while True:
            try:
                assert self.pool is not None
                async with self.pool.connection() as conn:
                    depth = await queue.queue_depth(conn)
                    cur = await conn.execute(
                        f"SELECT count(*) FROM {queue.QUEUE_SETTINGS.qualified.queue_table}"
                        " WHERE status = 'picked'"
                    )
                    row = await cur.fetchone()
                for entrypoint in {queue.GENERATE_ENTRYPOINT, queue.JUDGE_ENTRYPOINT} | set(depth):
                    QUEUE_DEPTH.labels(entrypoint).set(depth.get(entrypoint, 0))
                JOBS_IN_FLIGHT.set(int(row[0]) if row else 0)
                async with self.pool.connection() as conn:
                    JOBS_HELD.set(await queue.held_jobs(conn))
            except psycopg.Error as exc:
                logger.warning("queue depth unknown: %s", exc)
            await asyncio.sleep(QUEUE_DEPTH_INTERVAL_S)

    async def _repair(self, store: RunnerStore, run: RunRow) -> int:
        """Queues again the chunks of a running run that have neither all their results nor
        a job (a job parked after an unexpected failure, a queue cleared by hand): a run
        always ends. Chunks done twice cost nothing: results are stored once."""
        unfinished = await store.unfinished_chunks(run)
        if not unfinished:
            return 0
        assert self.pool is not None
        async with self.pool.connection() as conn, conn.transaction():
            lost = await queue.chunks_without_jobs(conn, run.id, run.attempt, unfinished)
            await queue.enqueue(
                conn,
                [
                    queue.QueuedJob(
                        queue.GENERATE_ENTRYPOINT,
                        queue.GenerateJob(
                            run=str(run.id),
                            attempt=run.attempt,
                            first=first,
                            count=min(run.chunk_size, run.n_prompts - first),
                        ),
                    )
                    for first in lost
                ],
            )
        if lost:
            logger.warning("run %s: %d chunks had no job; queued again", run.id, len(lost))
        return len(lost)

    async def _repair_runs(self) -> None:
        while True:
            await asyncio.sleep(REPAIR_INTERVAL_S)
            try:
                assert self.repo is not None
                for run in await self.repo.running():
                    await self._repair(self.repo, run)
            except psycopg.Error as exc:
                logger.warning("cannot look for lost chunks: %s", exc)

    # --- the API ---

    async def _run_proto(self, store: RunnerStore, run: RunRow) -> runner_pb2.Run:
        totals = await store.totals(run)
        return runner_pb2.Run(
            name=run_name(run.id),
            study=run.study,
            state=_STATES[run.state],
            done=run.state != RUNNING,
            attempt=run.attempt,
            create_time=_timestamp(run.created_at),
            start_time=_timestamp(run.started_at),
            update_time=_timestamp(run.updated_at),
            end_time=_timestamp(run.ended_at),
            progress=progress(run, totals, time.time()),
            error=run.error,
        )

    async def _find(self, name: str, context: Context) -> tuple[RunnerStore, RunRow]:
        store = await require_ready(self.repo, context, "runner database")
        prefix, _, raw = name.partition("/")
        try:
            run_id = uuid.UUID(raw) if prefix == "runs" else None
        except ValueError:
            run_id = None
        if run_id is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"name: expected 'runs/<run id>', got {name!r}"
            )
        assert run_id is not None
        run = await store.get(run_id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run named {name!r}")
        assert run is not None
        return store, run

    async def _check_served(
        self, models: Sequence[RunModel], judges: Sequence[str], context: Context
    ) -> None:
        """FAILED_PRECONDITION before any work when the study names a model or judge that
        nobody serves."""
        assert self.generator is not None and self.judge is not None
        served = await call_owner(
            self.generator.ListModels, generator_pb2.ListModelsRequest(), "generator", context
        )
        offered = await call_owner(
            self.judge.ListJudges, judge_pb2.ListJudgesRequest(), "judge", context
        )
        served_names = {m.name for m in served.models}
        offered_names = {j.name for j in offered.judges}
        problems = [
            f"model {m.model!r} (small model {m.name!r}) is not served; served: "
            f"{sorted(served_names)}"
            for m in models
            if m.model not in served_names
        ] + [
            f"judge {j!r} is not offered; available: {sorted(offered_names)}"
            for j in judges
            if j not in offered_names
        ]
        if problems:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, listed(problems))

    async def StartRun(
        self, request: runner_pb2.StartRunRequest, context: Context
    ) -> runner_pb2.StartRunResponse:
        store = await require_ready(self.repo, context, "runner database")
        assert self.metrics is not None and self.judge is not None
        source = request.WhichOneof("study")
        if source is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "study: give a definition or a study_name"
            )
        name = request.study_name if source == "study_name" else request.definition.name
        problems = (
            definition_problems(request.definition)
            if source == "definition"
            else (["study_name: empty"] if not name.strip() else [])
            + name_problems([("study_name", name)])
        )
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, listed(problems))
        # Started already: the same run, whoever asks and however often.
        if (running := await store.running_for(name)) is not None:
            await self._repair(store, running)
            return runner_pb2.StartRunResponse(run=await self._run_proto(store, running))
        if source == "study_name":
            study = await call_owner(
                self.metrics.GetStudy,
                metrics_pb2.GetStudyRequest(name=name),
                "metrics",
                context,
                PASSED_THROUGH | {grpc.StatusCode.NOT_FOUND},
            )
            prompts, models, judges = list(study.prompts), list(study.models), list(study.judges)
        else:
            d = request.definition
            # Everything but the study's own judges is checked before any is defined: a
            # refused run leaves nothing behind (definition_problems checked these parse).
            own = {json.loads(text)["name"] for text in d.judge_definitions}
            await self._check_served(
                [RunModel(m.name, m.model, {}) for m in d.models],
                [j for j in d.judges if j not in own],
                context,
            )
            # All of them checked before the first is defined: none is left behind when a
            # later one is refused.
            for validate_only in (True, False):
                for definition in d.judge_definitions:
                    await call_owner(
                        self.judge.DefineJudge,
                        judge_pb2.DefineJudgeRequest(
                            definition=definition, study=name, validate_only=validate_only
                        ),
                        "judge",
                        context,
                    )
            models, judges = list(d.models), list(d.judges)
        run_models = [
            RunModel(m.name, m.model, GenerationParams.from_proto(m.params).as_json())
            for m in models
        ]
        await self._check_served(run_models, judges, context)
        if source == "definition":
            registered = await call_owner(
                self.metrics.RegisterStudy,
                metrics_pb2.RegisterStudyRequest(
                    name=name,
                    prompts=request.definition.prompts,
                    models=models,
                    judges=judges,
                ),
                "metrics",
                context,
            )
            prompts = list(registered.prompts)
        if not prompts:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"study {name!r} has no prompts"
            )
        chunk = self.settings.runner_chunk_size

        async def first_jobs(conn: Any, run: RunRow) -> None:
            await queue.enqueue(
                conn,
                [
                    queue.QueuedJob(
                        queue.GENERATE_ENTRYPOINT,
                        queue.GenerateJob(
                            run=str(run.id),
                            attempt=run.attempt,
                            first=first,
                            count=min(chunk, len(prompts) - first),
                        ),
                    )
                    for first in range(0, len(prompts), chunk)
                ],
            )

        started = await store.start(
            name,
            run_models,
            judges,
            [PromptRow(p.prompt_id, p.external_id, p.text, p.category) for p in prompts],
            rejudge_unscorable=request.rejudge_unscorable,
            chunk_size=chunk,
            enqueue=first_jobs,
        )
        if started.started:
            logger.info(
                "run %s of study %s started (attempt %d, %d prompts)",
                started.run.id,
                name,
                started.run.attempt,
                len(prompts),
            )
        return runner_pb2.StartRunResponse(run=await self._run_proto(store, started.run))

    async def GetRun(
        self, request: runner_pb2.GetRunRequest, context: Context
    ) -> runner_pb2.GetRunResponse:
        store, run = await self._find(request.name, context)
        return runner_pb2.GetRunResponse(run=await self._run_proto(store, run))

    async def ListRuns(
        self, request: runner_pb2.ListRunsRequest, context: Context
    ) -> runner_pb2.ListRunsResponse:
        store = await require_ready(self.repo, context, "runner database")
        if request.page_size < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_size: negative")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        offset = 0
        if request.page_token:
            try:
                offset = int(base64.urlsafe_b64decode(request.page_token.encode()).decode())
            except (ValueError, binascii.Error):
                offset = -1
            if not 0 <= offset <= MAX_OFFSET:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "page_token: not a token this service gave out",
                )
        runs = await store.page(offset, size + 1, request.study)
        token = (
            base64.urlsafe_b64encode(str(offset + size).encode()).decode()
            if len(runs) > size
            else ""
        )
        return runner_pb2.ListRunsResponse(
            runs=[await self._run_proto(store, r) for r in runs[:size]], next_page_token=token
        )

    async def CancelRun(
        self, request: runner_pb2.CancelRunRequest, context: Context
    ) -> runner_pb2.CancelRunResponse:
        store, run = await self._find(request.name, context)

        async def drop_jobs(conn: Any, cancelled: RunRow) -> None:
            # Queued jobs go; workers holding one are told (NOTIFY, at commit) to cancel it.
            jobs = await queue.run_jobs(conn, cancelled.id, cancelled.attempt)
            if jobs:
                await queue.queries(conn).mark_job_as_cancelled(jobs)

        outcome = await store.cancel(run.id, "cancelled (CancelRun)", drop_jobs)
        assert outcome is not None  # runs are never deleted
        before, now = outcome
        if before not in (RUNNING, CANCELLED):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"run {request.name} is already done ({before}); nothing to cancel",
            )
        if before == RUNNING:
            logger.info("run %s of study %s cancelled", run.id, run.study)
        return runner_pb2.CancelRunResponse(run=await self._run_proto(store, now))

    async def WatchRun(
        self, request: runner_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[runner_pb2.WatchRunResponse]:
        store, run = await self._find(request.name, context)
        last: bytes | None = None
        while True:
            proto = await self._run_proto(store, run)
            # Rate and ETA change every instant; a message goes out when the work moved.
            shown = runner_pb2.Run()
            shown.CopyFrom(proto)
            shown.progress.ClearField("items_per_second")
            shown.progress.ClearField("eta_seconds")
            shown.ClearField("update_time")
            key = shown.SerializeToString(deterministic=True)
            if key != last:
                last = key
                yield runner_pb2.WatchRunResponse(run=proto)
            if proto.done:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.draining.wait(), timeout=self.settings.runner_watch_interval_s
                )
            if self.draining.is_set():
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    "this runner replica is shutting down; watch again (the run goes on)",
                )
            found = await store.get(run.id)
            if found is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"run {request.name} is gone")
            assert found is not None
            run = found
