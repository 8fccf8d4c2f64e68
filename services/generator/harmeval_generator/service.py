"""GeneratorService: answers prompts with a served model, storing every answer once."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

import grpc
from prometheus_client import Counter

from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc
from harmeval.params import MAX_SEED, GenerationParams
from harmeval.server import Servicer, ServiceSpec, require_ready
from harmeval.validation import listed
from harmeval_generator.backends.base import (
    Completion,
    Engine,
    EngineMisconfiguredError,
    EngineUnavailableError,
    ModelPrompt,
    PromptTooLongError,
    RequestRejectedError,
    StreamState,
)
from harmeval_generator.engines import open_engines
from harmeval_generator.pathologies import detect
from harmeval_generator.settings import GeneratorSettings
from harmeval_generator.store import (
    SCHEMA,
    GeneratorStore,
    ImportAnswer,
    NewGeneration,
    PromptIn,
    ServedModelName,
    StoredGeneration,
)

logger = logging.getLogger(__name__)

# Answers and prompts longer than this (together) are checked for pathologies in a thread.
_DETECT_INLINE_CHARS = 20_000

# What an engine may raise for one request, mapped to a status by `_abort_for_engine_error`.
ENGINE_ERRORS = (
    PromptTooLongError,
    RequestRejectedError,
    EngineMisconfiguredError,
    EngineUnavailableError,
)

Context = grpc.aio.ServicerContext[Any, Any]

# The settings that change a model's answers (not where it is served from, or its threads).
IDENTITY_KEYS = ("model_file", "model", "model_id", "template", "prompt_format")

MAX_PROMPTS_PER_REQUEST = 256
MAX_SAMPLES = 16

TOKENS = Counter(
    "harmeval_generator_tokens",
    "Tokens processed for new answers (stored answers cost nothing).",
    ["model", "kind"],
)

SPEC = ServiceSpec(
    name="generator",
    descriptor=generator_pb2.DESCRIPTOR.services_by_name["GeneratorService"],
    add_to_server=generator_pb2_grpc.add_GeneratorServiceServicer_to_server,
)


def to_proto(g: StoredGeneration, model: str, cached: bool) -> common_pb2.Generation:
    return common_pb2.Generation(
        generation_id=g.id,
        prompt_id=g.prompt_id,
        model=model,
        text=g.text,
        params=GenerationParams.from_json(g.params).to_proto(),
        prompt_tokens=g.prompt_tokens,
        completion_tokens=g.completion_tokens,
        latency_seconds=g.latency_seconds,
        finish_reason=g.finish_reason,
        cached=cached,
        flags=g.flags,
        ttft_seconds=g.ttft_seconds or 0.0,
    )


@dataclass(frozen=True)
class Job:
    """One answer to produce: a prompt (by index) and one sample of it."""

    prompt_index: int
    sample_index: int
    prompt_id: int
    text: str
    params: GenerationParams


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer, Servicer):
    def __init__(self, settings: GeneratorSettings) -> None:
        self.settings = settings
        self.repo: GeneratorStore | None = None
        self.engines: dict[str, Engine] = {}
        # Per engine (made at its first request): requests in flight across all calls, at most
        # Engine.max_concurrency.
        self.slots: dict[str, asyncio.Semaphore] = {}
        self.model_ids: dict[str, int] = {}
        self._engine_died = False

    @property
    def healthy(self) -> bool:
        """False once an in-process engine died serving a request, or says it can no longer
        serve: the watchdog then reports NOT_SERVING and the pod restarts (a remote engine's
        server going down is not this pod's to fix)."""
        return not self._engine_died and all(
            e.healthy for e in self.engines.values() if e.in_process
        )

    @healthy.setter
    def healthy(self, value: bool) -> None:
        self._engine_died = not value

    async def startup(self, stack: AsyncExitStack) -> None:
        pool = await self.database(stack, self.settings, SCHEMA)
        self.repo = GeneratorStore(pool)
        self.engines = await open_engines(self.settings, stack)
        for name, engine in self.engines.items():
            settings = dict(engine.settings())
            identity = {k: settings[k] for k in IDENTITY_KEYS if k in settings}
            self.model_ids[name] = await self.repo.register_served_model(
                name, engine.backend, settings, {"backend": engine.backend, **identity}
            )
            logger.info("serving %s with %s", name, engine.backend)

    async def ListModels(
        self, request: generator_pb2.ListModelsRequest, context: Context
    ) -> generator_pb2.ListModelsResponse:
        return generator_pb2.ListModelsResponse(
            models=[
                generator_pb2.ModelInfo(
                    name=name,
                    backend=e.backend,
                    context_length=e.context_length,
                    settings=e.settings(),
                    max_concurrency=e.max_concurrency or self.settings.generator_concurrency,
                )
                for name, e in self.engines.items()
            ]
        )

    async def ImportGenerations(
        self, request: generator_pb2.ImportGenerationsRequest, context: Context
    ) -> generator_pb2.ImportGenerationsResponse:
        repo = await require_ready(self.repo, context, "generator database")
        problems = _import_problems(request, set(self.engines))
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, listed(problems))
        try:
            prompt_ids, generation_ids = await repo.import_generations(
                [
                    PromptIn(text=p.text, category=p.category or "uncategorized")
                    for p in request.prompts
                ],
                [
                    ImportAnswer(prompt_index=g.prompt_index, model=g.model, text=g.text)
                    for g in request.generations
                ],
            )
        except ServedModelName as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return generator_pb2.ImportGenerationsResponse(
            prompt_ids=prompt_ids, generation_ids=generation_ids
        )

    # -- validation ------------------------------------------------------------------------

    async def _engine(self, model: str, context: Context) -> Engine:
        engine = self.engines.get(model)
        if engine is None:
            known = ", ".join(sorted(self.engines)) or "none"
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"unknown model {model!r}; served: {known}"
            )
        assert engine is not None
        return engine

    async def _jobs(
        self,
        model: str,
        prompts: list[common_pb2.Prompt],
        params_proto: common_pb2.GenerationParams,
        n: int,
        context: Context,
    ) -> tuple[Engine, list[Job]]:
        repo = await require_ready(self.repo, context, "generator database")
        engine = await self._engine(model, context)
        if not prompts:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "prompts: empty prompt list")
        if len(prompts) > MAX_PROMPTS_PER_REQUEST:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"prompts: {len(prompts)} prompts exceed the limit of "
                f"{MAX_PROMPTS_PER_REQUEST} per request",
            )
        if not 0 <= n <= MAX_SAMPLES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"n: {n} samples outside 1..{MAX_SAMPLES}"
            )
        for i, p in enumerate(prompts):
            if not p.text.strip():
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"prompts[{i}].text: empty prompt text"
                )
        params = GenerationParams.from_proto(params_proto)
        problems = params.validate()
        if params.seed + max(n, 1) - 1 > MAX_SEED >= params.seed:
            problems.append(f"seed + n - 1 must be at most {MAX_SEED} (sample k uses seed + k)")
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "params: " + "; ".join(problems))
        for i, p in enumerate(prompts):
            try:
                await engine.check_fits(ModelPrompt(p.text, params.system_prompt), params)
            except PromptTooLongError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"prompts[{i}]: {exc}")
        prompt_ids = await repo.upsert_prompts(
            [PromptIn(text=p.text, category=p.category or "uncategorized") for p in prompts]
        )
        jobs = [
            Job(i, k, pid, p.text, _sample(params, k))
            for i, (p, pid) in enumerate(zip(prompts, prompt_ids, strict=True))
            for k in range(max(n, 1))
        ]
        return engine, jobs

    # -- producing answers -----------------------------------------------------------------

    async def _store(self, engine: Engine, job: Job, completion: Completion) -> StoredGeneration:
        repo = self.repo
        assert repo is not None
        TOKENS.labels(engine.name, "prompt").inc(completion.prompt_tokens)
        TOKENS.labels(engine.name, "completion").inc(completion.completion_tokens)
        check = functools.partial(
            detect,
            job.text,
            completion.text,
            finish_reason=completion.finish_reason,
            max_tokens=job.params.max_tokens,
            completion_tokens=completion.completion_tokens,
        )
        # Off the event loop when long: a 1 MB prompt takes ~0.2 s to search for its echo.
        long = len(job.text) + len(completion.text) > _DETECT_INLINE_CHARS
        found = await asyncio.to_thread(check) if long else check()
        return await repo.insert_generation(
            NewGeneration(
                prompt_id=job.prompt_id,
                model_id=self.model_ids[engine.name],
                params=job.params,
                text=completion.text,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                latency_seconds=completion.latency_seconds,
                finish_reason=completion.finish_reason,
                flags=found.flags,
                ttft_seconds=completion.ttft_seconds,
            )
        )

    async def _answer(self, engine: Engine, job: Job, context: Context) -> common_pb2.Generation:
        """The stored answer, or a new one from the engine (then stored)."""
        repo = self.repo
        assert repo is not None
        stored = await repo.find_generations(
            self.model_ids[engine.name], job.params, [job.prompt_id]
        )
        if job.prompt_id in stored:
            return to_proto(stored[job.prompt_id], engine.name, cached=True)
        try:
            completion = await engine.complete(
                ModelPrompt(job.text, job.params.system_prompt), job.params
            )
        except ENGINE_ERRORS as exc:
            await self._abort_for_engine_error(engine, exc, context)
        return to_proto(await self._store(engine, job, completion), engine.name, cached=False)

    async def _abort_for_engine_error(
        self, engine: Engine, exc: Exception, context: Context
    ) -> None:
        if isinstance(exc, PromptTooLongError | RequestRejectedError):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"model {engine.name!r}: {exc}")
        if isinstance(exc, EngineMisconfiguredError):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"model {engine.name!r} is misconfigured: {exc}",
            )
        if engine.in_process:
            # The pod cannot recover an in-process engine: let Kubernetes restart it.
            self.healthy = False
        logger.error("engine %s unavailable: %s", engine.name, exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"model {engine.name!r}: {exc}")

    async def _run_jobs(
        self, engine: Engine, jobs: list[Job], context: Context
    ) -> AsyncIterator[tuple[Job, common_pb2.Generation]]:
        """Answers in completion order; engines with continuous batching get the requests
        together, up to the engine's slots, which every call shares."""
        limit = self.slots.get(engine.name) or self.slots.setdefault(
            engine.name,
            asyncio.Semaphore(engine.max_concurrency or self.settings.generator_concurrency),
        )

        async def one(job: Job) -> tuple[Job, common_pb2.Generation]:
            async with limit:
                return job, await self._answer(engine, job, context)

        tasks = [asyncio.ensure_future(one(job)) for job in jobs]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            # The caller went away or one answer failed: cancel the rest, freeing engine slots.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def Generate(
        self, request: generator_pb2.GenerateRequest, context: Context
    ) -> generator_pb2.GenerateResponse:
        engine, jobs = await self._jobs(
            request.model, list(request.prompts), request.params, request.n, context
        )
        results: dict[tuple[int, int], common_pb2.Generation] = {}
        async for job, generation in self._run_jobs(engine, jobs, context):
            results[(job.prompt_index, job.sample_index)] = generation
        return generator_pb2.GenerateResponse(generations=[results[k] for k in sorted(results)])

    async def GenerateBatch(
        self, request: generator_pb2.GenerateBatchRequest, context: Context
    ) -> AsyncIterator[generator_pb2.GenerateBatchResponse]:
        engine, jobs = await self._jobs(
            request.model, list(request.prompts), request.params, request.n, context
        )
        async for job, generation in self._run_jobs(engine, jobs, context):
            yield generator_pb2.GenerateBatchResponse(
                prompt_index=job.prompt_index,
                sample_index=job.sample_index,
                generation=generation,
            )

    async def GenerateStream(
        self, request: generator_pb2.GenerateStreamRequest, context: Context
    ) -> AsyncIterator[generator_pb2.GenerateStreamResponse]:
        engine, [job] = await self._jobs(
            request.model, [request.prompt], request.params, 1, context
        )
        repo = self.repo
        assert repo is not None
        stored = await repo.find_generations(
            self.model_ids[engine.name], job.params, [job.prompt_id]
        )
        if job.prompt_id in stored:
            g = stored[job.prompt_id]
            yield generator_pb2.GenerateStreamResponse(text=g.text)
            yield generator_pb2.GenerateStreamResponse(
                generation=to_proto(g, engine.name, cached=True)
            )
            return
        state = StreamState()
        started = time.perf_counter()
        first: float | None = None
        try:
            async for text in engine.stream(
                ModelPrompt(job.text, job.params.system_prompt), job.params, state
            ):
                first = first or time.perf_counter()
                yield generator_pb2.GenerateStreamResponse(text=text)
            completion = state.completion(started, first)
        except ENGINE_ERRORS as exc:
            await self._abort_for_engine_error(engine, exc, context)
        saved = await self._store(engine, job, completion)
        yield generator_pb2.GenerateStreamResponse(
            generation=to_proto(saved, engine.name, cached=False)
        )


def _import_problems(
    request: generator_pb2.ImportGenerationsRequest, served: set[str]
) -> list[str]:
    """Everything wrong with an import, each naming its field, so a caller fixes all at once."""
    problems = [] if request.prompts else ["prompts: empty prompt list"]
    first: dict[str, int] = {}
    for i, p in enumerate(request.prompts):
        if not p.text.strip():
            problems.append(f"prompts[{i}].text: empty prompt text")
        elif first.setdefault(p.text, i) != i:
            # Prompts are stored once per text: two would be one, and their answers collide.
            problems.append(f"prompts[{i}].text: same text as prompts[{first[p.text]}]")
    seen: dict[tuple[int, str], int] = {}
    for i, g in enumerate(request.generations):
        where = f"generations[{i}]"
        if not 0 <= g.prompt_index < len(request.prompts):
            problems.append(f"{where}.prompt_index: {g.prompt_index} is not a prompt index")
        if not g.model.strip():
            problems.append(f"{where}.model: empty")
        elif g.model in served:
            problems.append(f"{where}.model: {g.model!r} is served here; use a name of its own")
        key = (g.prompt_index, g.model)
        if key in seen:
            problems.append(f"{where}: same prompt and model as generations[{seen[key]}]")
        seen.setdefault(key, i)
    return problems


def _sample(params: GenerationParams, k: int) -> GenerationParams:
    """Sample k of a prompt: the same parameters with seed + k (k = 0 is the request itself)."""
    return params if k == 0 else replace(params, seed=params.seed + k)
