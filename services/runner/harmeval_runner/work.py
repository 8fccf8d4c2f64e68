"""What a worker does with a job: a chunk of prompts answered by every small model, then one
judge's verdicts on those answers.

Delivery is at least once (a job whose worker died is done again); results are exactly once
because the generator and the judge service return what they stored instead of calling a
backend again, and a chunk's result row is overwritten, not added to. No stage barrier: a
chunk's judge jobs are queued the moment its answers exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import psycopg
from pgqueuer.domain.errors import RetryRequested
from pgqueuer.domain.models import Job
from prometheus_client import Counter
from psycopg import AsyncConnection

from harmeval.clients import CURRENT_STUDY
from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2
from harmeval.generator.v1.generator_pb2_grpc import GeneratorServiceStub
from harmeval.judge.v1 import judge_pb2
from harmeval.judge.v1.judge_pb2_grpc import JudgeServiceStub
from harmeval.params import GenerationParams
from harmeval_runner.queue import (
    JudgeJob,
    QueuedJob,
    enqueue,
    generate_job,
    judge_entrypoint,
    judge_job,
)
from harmeval_runner.settings import RunnerSettings
from harmeval_runner.store import (
    GENERATE,
    JUDGE,
    RUNNING,
    ChunkResult,
    PromptRow,
    RunModel,
    RunnerStore,
    RunRow,
)

logger = logging.getLogger(__name__)

ITEMS = Counter(
    "harmeval_runner_items_total",
    "Items a runner worker finished, by stage and outcome (new, cached, unscorable, failed).",
    ["stage", "outcome"],
)
RETRIES = Counter(
    "harmeval_runner_job_retries_total", "Jobs put back in the queue for a later try.", ["stage"]
)

# Worth another try later: the service is down, restarting, overloaded or shedding load. The
# rest (bad input, INTERNAL: a bug) is retried item by item, so it fails only the items it hits.
RETRIED_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)
# A backend call never waits longer than this (a stuck server must not hold a job forever).
CALL_DEADLINE_S = 600.0
MAX_RETRY_DELAY_S = 30.0


class ItemsFailed(Exception):
    """A call refused for good (bad input, a model not served): its items fail, not the job."""


@dataclass(frozen=True)
class Answered:
    """One small model's answers for a chunk: `answers[i]` is prompt i's (id, text) or None."""

    result: ChunkResult
    answers: list[tuple[int, str] | None]
    errors: list[str]


def _prompt(p: PromptRow) -> common_pb2.Prompt:
    return common_pb2.Prompt(
        prompt_id=p.prompt_id, external_id=p.external_id, text=p.text, category=p.category
    )


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(MAX_RETRY_DELAY_S, 0.25 * 2**attempts))


class Worker:
    """Handlers for the queue's entrypoints."""

    def __init__(
        self,
        store: RunnerStore,
        generator: GeneratorServiceStub,
        judge: JudgeServiceStub,
        settings: RunnerSettings,
    ) -> None:
        self.store = store
        self.generator = generator
        self.judge = judge
        self.settings = settings
        self.limited_judges = set(settings.judge_limits())

    async def _current(self, run_id: str, attempt: int) -> RunRow | None:
        """The job's run when the job still belongs to its running attempt, else None (the run
        was cancelled or started again: the job is dropped without a backend call)."""
        run = await self.store.get(uuid.UUID(run_id))
        if run is None or run.state != RUNNING or run.attempt != attempt:
            return None
        return run

    async def _retry_or_fail(self, job: Job, stage: str, run_id: str, exc: Exception) -> str:
        """Raises RetryRequested while tries are left; else returns why the items fail."""
        message = f"{stage}: {_describe(exc)}"
        # A service down or the database away may come back; a bug in this code would not.
        transient = isinstance(exc, grpc.aio.AioRpcError | psycopg.Error)
        if transient and job.attempts + 1 < self.settings.runner_max_attempts:
            RETRIES.labels(stage).inc()
            logger.warning("%s job %s retried (try %d): %s", stage, job.id, job.attempts, message)
            # When the database is what failed, the retry is what matters.
            with contextlib.suppress(psycopg.Error):
                await self.store.note_errors(uuid.UUID(run_id), [f"{message} (retrying)"])
            raise RetryRequested(_retry_delay(job.attempts), reason=message) from exc
        return f"{message} (gave up after {job.attempts + 1} tries)"

    async def generate(self, job: Job) -> None:
        assert job.payload is not None
        task = generate_job(job.payload)
        try:
            run = await self._current(task.run, task.attempt)
            if run is None:
                return
            CURRENT_STUDY.set(run.study)  # named in the services' audit lines
            prompts = await self.store.prompts(run.id, task.first, task.count)
            answered = await asyncio.gather(
                *(self._answer(model, prompts, task.first) for model in run.run_models())
            )
            jobs = [
                QueuedJob(
                    judge_entrypoint(judge, self.limited_judges),
                    JudgeJob(
                        run=task.run,
                        attempt=task.attempt,
                        first=task.first,
                        count=task.count,
                        judge=judge,
                        answers=[
                            [a for a in (m.answers[i] for m in answered) if a is not None]
                            for i in range(len(prompts))
                        ],
                    ),
                )
                for judge in run.judges
            ]

            async def follow_up(conn: AsyncConnection[Any]) -> None:
                await enqueue(conn, jobs)

            await self.store.record(
                run.id,
                task.attempt,
                [a.result for a in answered],
                follow_up,
                [e for a in answered for e in a.errors],
            )
        except Exception as exc:  # whatever it is, the chunk must end
            await self._fail_chunk(job, GENERATE, task.run, task.attempt, exc, run_models=True)

    async def _answer(self, model: RunModel, prompts: list[PromptRow], first: int) -> Answered:
        """The model's answers to the chunk's prompts in one call; when the call is refused
        for good, prompt by prompt, so one bad prompt fails alone."""
        params = GenerationParams.from_json(model.params).to_proto()
        try:
            reply = await self._generate(model.model, prompts, params)
            generations: list[common_pb2.Generation | None] = list(reply)
            errors: list[str] = []
        except ItemsFailed:
            generations, errors = [], []
            for p in prompts:
                try:
                    generations += await self._generate(model.model, [p], params)
                except ItemsFailed as exc:
                    generations.append(None)
                    errors.append(f"generate {model.name} prompt {p.external_id}: {exc}")
        done = [g for g in generations if g is not None]
        cached = sum(g.cached for g in done)
        ITEMS.labels(GENERATE, "new").inc(len(done) - cached)
        ITEMS.labels(GENERATE, "cached").inc(cached)
        ITEMS.labels(GENERATE, "failed").inc(len(prompts) - len(done))
        return Answered(
            ChunkResult(
                stage=GENERATE,
                subject=model.name,
                first=first,
                done=len(done),
                cached=cached,
                failed=len(prompts) - len(done),
                prompt_tokens=sum(g.prompt_tokens for g in done if not g.cached),
                completion_tokens=sum(g.completion_tokens for g in done if not g.cached),
            ),
            [(g.generation_id, g.text) if g is not None else None for g in generations],
            errors,
        )

    async def _generate(
        self, model: str, prompts: Sequence[PromptRow], params: common_pb2.GenerationParams
    ) -> list[common_pb2.Generation]:
        try:
            reply = await self.generator.Generate(
                generator_pb2.GenerateRequest(
                    model=model, prompts=[_prompt(p) for p in prompts], params=params
                ),
                timeout=CALL_DEADLINE_S,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in RETRIED_CODES:
                raise
            raise ItemsFailed(_describe(exc)) from exc
        return list(reply.generations)

    async def judge_chunk(self, job: Job) -> None:
        assert job.payload is not None
        task = judge_job(job.payload)
        try:
            run = await self._current(task.run, task.attempt)
            if run is None:
                return
            CURRENT_STUDY.set(run.study)
            prompts = await self.store.prompts(run.id, task.first, task.count)
            items = [
                judge_pb2.JudgeItem(
                    prompt=_prompt(prompt),
                    answers=[judge_pb2.Answer(generation_id=g, text=t) for g, t in answers],
                )
                for prompt, answers in zip(prompts, task.answers, strict=True)
                if answers
            ]
            result, errors = await self._verdicts(task, items, run.rejudge_unscorable)
            await self.store.record(run.id, task.attempt, [result], errors=errors)
        except Exception as exc:  # whatever it is, the chunk must end
            await self._fail_chunk(job, JUDGE, task.run, task.attempt, exc, judge=task)

    async def _verdicts(
        self, task: JudgeJob, items: list[judge_pb2.JudgeItem], rejudge: bool
    ) -> tuple[ChunkResult, list[str]]:
        """The judge's verdicts on the chunk's answers in one call; when it is refused for
        good, item by item, so one bad item fails alone."""
        judgments: list[common_pb2.Judgment] = []
        failed, errors = 0, []
        try:
            judgments = await self._judge(task.judge, items, rejudge)
        except ItemsFailed:
            for item in items:
                try:
                    judgments += await self._judge(task.judge, [item], rejudge)
                except ItemsFailed as exc:
                    failed += len(item.answers)
                    errors.append(f"judge {task.judge} prompt {item.prompt.external_id}: {exc}")
        fresh = [j for j in judgments if not j.cached]
        cached = len(judgments) - len(fresh)
        unscorable = sum(j.status == common_pb2.JUDGMENT_STATUS_UNSCORABLE for j in judgments)
        ITEMS.labels(JUDGE, "new").inc(len(fresh))
        ITEMS.labels(JUDGE, "cached").inc(cached)
        ITEMS.labels(JUDGE, "unscorable").inc(unscorable)
        ITEMS.labels(JUDGE, "failed").inc(failed)
        return (
            ChunkResult(
                stage=JUDGE,
                subject=task.judge,
                first=task.first,
                done=len(judgments),
                cached=cached,
                unscorable=unscorable,
                failed=failed,
                prompt_tokens=sum(j.prompt_tokens for j in fresh),
                completion_tokens=sum(j.completion_tokens for j in fresh),
                cost_usd=sum(j.cost_usd for j in fresh),
            ),
            errors,
        )

    async def _judge(
        self, judge: str, items: list[judge_pb2.JudgeItem], rejudge: bool
    ) -> list[common_pb2.Judgment]:
        if not items:
            return []
        judgments: list[common_pb2.Judgment] = []
        try:
            stream = self.judge.JudgeBatch(
                judge_pb2.JudgeBatchRequest(judge=judge, items=items, rejudge_unscorable=rejudge),
                timeout=CALL_DEADLINE_S,
            )
            async for reply in stream:
                judgments += reply.judgments
        except grpc.aio.AioRpcError as exc:
            if exc.code() in RETRIED_CODES:
                raise
            raise ItemsFailed(_describe(exc)) from exc
        return judgments

    async def _fail_chunk(
        self,
        job: Job,
        stage: str,
        run_id: str,
        attempt: int,
        exc: Exception,
        *,
        run_models: bool = False,
        judge: JudgeJob | None = None,
    ) -> None:
        """A chunk that failed (a service down, the database, a bug): retried later, and
        after the last try its items are recorded as failed, so the run still ends and says
        why. A job never leaves the queue without its chunk's results."""
        if not isinstance(exc, grpc.aio.AioRpcError | psycopg.Error):
            logger.exception("%s job %s failed unexpectedly", stage, job.id, exc_info=exc)
        reason = await self._retry_or_fail(job, stage, run_id, exc)
        try:
            run = await self._current(run_id, attempt)
            if run is None:
                return
            placeholders: list[ChunkResult] = []
            if judge is not None:
                results = [
                    ChunkResult(
                        stage=JUDGE,
                        subject=judge.judge,
                        first=judge.first,
                        failed=sum(len(a) for a in judge.answers),
                    )
                ]
            else:
                assert run_models and job.payload is not None
                task = generate_job(job.payload)
                results = [
                    ChunkResult(stage=GENERATE, subject=m.name, first=task.first, failed=task.count)
                    for m in run.run_models()
                ]
                # Nothing to judge: the chunk's judge results are empty (unless an earlier
                # delivery of this chunk got them), and the run ends.
                placeholders = [
                    ChunkResult(stage=JUDGE, subject=j, first=task.first) for j in run.judges
                ]
            await self.store.record(
                run.id, attempt, results, errors=[reason], placeholders=placeholders
            )
        except psycopg.Error as db_exc:
            raise RetryRequested(_retry_delay(job.attempts), reason=str(db_exc)) from db_exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
