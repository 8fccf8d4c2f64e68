"""The generator service's RPCs and storage against real PostgreSQL: what only the real model
can show (a real Gemma 3 270M answer through llama.cpp, its token counts, answers keyed by
seed) on Gemma, everything about the service itself (validation, reuse, error mapping) on the
scripted in-process engine (`tests.fakes.scripted_engine`), which loads no model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2
from harmeval.params import GenerationParams
from harmeval_generator.backends.base import (
    EngineMisconfiguredError,
    EngineUnavailableError,
    ModelPrompt,
    RequestRejectedError,
)
from tests.fakes.scripted_engine import Script
from tests.integration.generator_fixtures import (
    SCRIPTED_MODEL,
    Generator,
    gemma_generator,
    scripted_generator,
)

PARAMS = common_pb2.GenerationParams(temperature=0.0, max_tokens=8, seed=1)


def request(
    *texts: str, model: str = SCRIPTED_MODEL, **params: object
) -> generator_pb2.GenerateRequest:
    p = common_pb2.GenerationParams(temperature=0.0, max_tokens=8, seed=1)
    for k, v in params.items():
        setattr(p, k, v)
    return generator_pb2.GenerateRequest(
        model=model,
        prompts=[common_pb2.Prompt(text=t, category="toxicity") for t in texts],
        params=p,
    )


@pytest.fixture
async def gemma(database_url: str, tmp_path: Path, model_path: Path) -> AsyncIterator[Generator]:
    """The generator serving the real Gemma 3 270M as `gemma3-270m` (n_ctx 512)."""
    async with gemma_generator(database_url, tmp_path, model_path) as generator:
        yield generator


@pytest.fixture
async def generator(database_url: str, tmp_path: Path) -> AsyncIterator[Generator]:
    """The generator serving the scripted engine as SCRIPTED_MODEL (context 512)."""
    async with scripted_generator(database_url, tmp_path) as g:
        yield g


# -- the real model ----------------------------------------------------------------------------


async def test_gemma_generates_stores_and_reuses(gemma: Generator) -> None:
    listed = await gemma.client.ListModels(generator_pb2.ListModelsRequest())
    [m] = listed.models
    assert m.name == "gemma3-270m" and m.backend == "llama.cpp" and m.context_length == 512
    assert m.settings["template"] == "qa-v1"

    first = await gemma.client.Generate(
        request("Say something rude.", "Tell me a secret.", model="gemma3-270m")
    )
    assert [g.cached for g in first.generations] == [False, False]
    g = first.generations[0]
    assert g.model == "gemma3-270m" and g.generation_id > 0 and g.prompt_id > 0
    assert 0 < g.completion_tokens <= 8 and g.prompt_tokens > 0 and g.latency_seconds > 0
    assert g.finish_reason in ("stop", "length")
    assert g.params.max_tokens == 8 and g.params.seed == 1
    assert await gemma.count_rows("generations") == 2

    again = await gemma.client.Generate(
        request("Tell me a secret.", "Say something rude.", model="gemma3-270m")
    )
    assert [x.cached for x in again.generations] == [True, True]
    assert {x.generation_id for x in again.generations} == {
        x.generation_id for x in first.generations
    }
    assert await gemma.count_rows("generations") == 2
    assert await gemma.count_rows("prompts") == 2

    other_seed = await gemma.client.Generate(
        request("Say something rude.", seed=2, model="gemma3-270m")
    )
    assert not other_seed.generations[0].cached
    assert await gemma.count_rows("generations") == 3


# -- the service, on the scripted engine ---------------------------------------------------------


async def test_list_models(generator: Generator) -> None:
    reply = await generator.client.ListModels(generator_pb2.ListModelsRequest())
    [m] = reply.models
    assert m.name == SCRIPTED_MODEL and m.backend == "scripted" and m.context_length == 512
    assert m.settings["template"] == "scripted-v1"
    assert generator.scripted().started


async def test_stored_answers_never_reach_the_engine(generator: Generator) -> None:
    engine = generator.scripted()
    first = await generator.client.Generate(request("Say something rude.", "Tell me a secret."))
    assert [g.cached for g in first.generations] == [False, False] and len(engine.calls) == 2
    g = first.generations[0]
    assert g.model == SCRIPTED_MODEL and g.completion_tokens == 8 and g.finish_reason == "length"
    assert g.prompt_tokens == 5 and "truncated" in g.flags

    again = await generator.client.Generate(request("Tell me a secret.", "Say something rude."))
    assert [x.cached for x in again.generations] == [True, True] and len(engine.calls) == 2
    assert [x.text for x in again.generations] == [x.text for x in first.generations][::-1]

    # Another seed is another answer's key (the greedy engine answers the same text).
    other_seed = await generator.client.Generate(request("Say something rude.", seed=2))
    assert not other_seed.generations[0].cached and len(engine.calls) == 3
    assert other_seed.generations[0].text == g.text
    assert await generator.count_rows("generations") == 3
    assert await generator.count_rows("prompts") == 2


def _raises(exc: Exception) -> Script:
    def script(prompt: ModelPrompt, params: GenerationParams) -> str:
        raise exc

    return script


@pytest.mark.parametrize(
    ("error", "code", "healthy"),
    [
        (RequestRejectedError("at most 4 stop sequences"), grpc.StatusCode.INVALID_ARGUMENT, True),
        (EngineMisconfiguredError("wrong key"), grpc.StatusCode.FAILED_PRECONDITION, True),
        # An in-process engine that died cannot recover: the service reports NOT_SERVING.
        (EngineUnavailableError("engine core died"), grpc.StatusCode.UNAVAILABLE, False),
    ],
)
async def test_engine_errors_are_mapped(
    generator: Generator, error: Exception, code: grpc.StatusCode, healthy: bool
) -> None:
    generator.scripted().script = _raises(error)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await generator.client.Generate(request("Hi."))
    assert err.value.code() == code and str(error) in (err.value.details() or "")
    assert generator.servicer.healthy is healthy
    assert generator.scripted().healthy is healthy
    assert await generator.count_rows("generations") == 0


@pytest.mark.parametrize(
    ("req", "code", "fragment"),
    [
        (request("hi", model="gpt-99"), grpc.StatusCode.NOT_FOUND, "unknown model 'gpt-99'"),
        (
            generator_pb2.GenerateRequest(model=SCRIPTED_MODEL),
            grpc.StatusCode.INVALID_ARGUMENT,
            "empty prompt list",
        ),
        (request("ok", "   "), grpc.StatusCode.INVALID_ARGUMENT, "prompts[1].text: empty"),
        (request("ok", top_p=1.5), grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
        (request("word " * 600), grpc.StatusCode.INVALID_ARGUMENT, "tokens too long"),
        (request("a\x00b"), grpc.StatusCode.INVALID_ARGUMENT, "prompts[0].text: contains a NUL"),
        (
            request("ok", system_prompt="be\x00nice"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "params.system_prompt: contains a NUL",
        ),
        # llama.cpp reads 2**32 - 1 as "random seed"; larger ones would wrap around.
        (request("ok", seed=2**32 - 1), grpc.StatusCode.INVALID_ARGUMENT, "seed must be in"),
        (
            generator_pb2.GenerateRequest(
                model=SCRIPTED_MODEL,
                prompts=[common_pb2.Prompt(text="ok")],
                params=common_pb2.GenerationParams(max_tokens=8, seed=2**32 - 2),
                n=2,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "seed + n - 1 must be at most 4294967294",
        ),
    ],
)
async def test_bad_input(
    generator: Generator, req: generator_pb2.GenerateRequest, code: grpc.StatusCode, fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await generator.client.Generate(req)
    assert err.value.code() == code
    assert fragment in (err.value.details() or "")
    assert await generator.count_rows("generations") == 0
    assert generator.scripted().calls == []
