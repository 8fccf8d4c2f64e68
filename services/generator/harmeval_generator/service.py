"""GeneratorService: answers prompts with a served model, storing every answer once."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

import grpc
from prometheus_client import Counter

from harmeval.common.v1 import common_pb2
from harmeval.db import Repository, open_database
from harmeval.db.repository import NewGeneration, PromptIn, StoredGeneration
from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc
from harmeval.params import GenerationParams
from harmeval.server import ServiceSpec, require_ready
from harmeval.settings import GeneratorSettings
from harmeval_generator.llamacpp import LlamaCppEngine, PromptTooLongError, embedded_model_path

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

MAX_PROMPTS_PER_REQUEST = 256

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
    )


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, settings: GeneratorSettings) -> None:
        self.settings = settings
        self.repo: Repository | None = None
        self.engines: dict[str, LlamaCppEngine] = {}
        self.model_ids: dict[str, int] = {}

    async def startup(self, stack: AsyncExitStack) -> None:
        s = self.settings
        self.repo = await stack.enter_async_context(open_database(s))
        path = s.generator_model_path or embedded_model_path(s.data_dir)
        engine = LlamaCppEngine(
            s.generator_model_name, path, n_ctx=s.generator_n_ctx, n_threads=s.generator_n_threads
        )
        stack.callback(engine.close)
        self.model_ids[s.generator_model_name] = await self.repo.upsert_model(
            s.generator_model_name, engine.backend, dict(engine.settings())
        )
        self.engines[s.generator_model_name] = engine
        logger.info("serving %s from %s", s.generator_model_name, path)

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
                )
                for name, e in self.engines.items()
            ]
        )

    async def Generate(
        self, request: generator_pb2.GenerateRequest, context: Context
    ) -> generator_pb2.GenerateResponse:
        repo = await require_ready(self.repo, context, "generator database")
        engine = self.engines.get(request.model)
        if engine is None:
            known = ", ".join(sorted(self.engines)) or "none"
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"unknown model {request.model!r}; served: {known}"
            )
        if not request.prompts:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "prompts: empty prompt list")
        if len(request.prompts) > MAX_PROMPTS_PER_REQUEST:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"prompts: {len(request.prompts)} prompts exceed the limit of "
                f"{MAX_PROMPTS_PER_REQUEST} per request",
            )
        for i, p in enumerate(request.prompts):
            if not p.text.strip():
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"prompts[{i}].text: empty prompt text"
                )
        params = GenerationParams.from_proto(request.params)
        if problems := params.validate():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "params: " + "; ".join(problems))
        for i, p in enumerate(request.prompts):
            try:
                engine.check_fits(p.text, params)
            except PromptTooLongError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"prompts[{i}]: {exc}")

        prompt_ids = await repo.upsert_prompts(
            [
                PromptIn(p.text, p.category or "uncategorized", p.external_id)
                for p in request.prompts
            ]
        )
        model_id = self.model_ids[request.model]
        stored = await repo.find_generations(model_id, params, prompt_ids)
        results: list[common_pb2.Generation] = []
        for prompt, prompt_id in zip(request.prompts, prompt_ids, strict=True):
            if prompt_id in stored:
                results.append(to_proto(stored[prompt_id], request.model, cached=True))
                continue
            completion = await engine.complete(prompt.text, params)
            TOKENS.labels(request.model, "prompt").inc(completion.prompt_tokens)
            TOKENS.labels(request.model, "completion").inc(completion.completion_tokens)
            saved = await repo.insert_generation(
                NewGeneration(
                    prompt_id=prompt_id,
                    model_id=model_id,
                    params=params,
                    text=completion.text,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    latency_seconds=completion.latency_seconds,
                    finish_reason=completion.finish_reason,
                )
            )
            stored[prompt_id] = saved
            results.append(to_proto(saved, request.model, cached=False))
        return generator_pb2.GenerateResponse(generations=results)
