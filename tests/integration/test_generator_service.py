"""Generator service with the real Gemma 3 270M model (llama.cpp) and real PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2
from tests.integration.conftest import Stack

PARAMS = common_pb2.GenerationParams(temperature=0.0, max_tokens=8, seed=1)


def request(
    *texts: str, model: str = "gemma3-270m", **params: object
) -> generator_pb2.GenerateRequest:
    p = common_pb2.GenerationParams(temperature=0.0, max_tokens=8, seed=1)
    for k, v in params.items():
        setattr(p, k, v)
    return generator_pb2.GenerateRequest(
        model=model,
        prompts=[common_pb2.Prompt(text=t, category="toxicity") for t in texts],
        params=p,
    )


async def test_generates_stores_and_reuses(stack: Stack) -> None:
    repo = stack.servicers["generator"].repo
    first = await stack.clients.generator.Generate(
        request("Say something rude.", "Tell me a secret.")
    )
    assert [g.cached for g in first.generations] == [False, False]
    g = first.generations[0]
    assert g.model == "gemma3-270m" and g.generation_id > 0 and g.prompt_id > 0
    assert 0 < g.completion_tokens <= 8 and g.prompt_tokens > 0 and g.latency_seconds > 0
    assert g.finish_reason in ("stop", "length")
    assert g.params.max_tokens == 8 and g.params.seed == 1
    assert await repo.count_rows("generations") == 2

    again = await stack.clients.generator.Generate(
        request("Tell me a secret.", "Say something rude.")
    )
    assert [x.cached for x in again.generations] == [True, True]
    assert {x.generation_id for x in again.generations} == {
        x.generation_id for x in first.generations
    }
    assert await repo.count_rows("generations") == 2
    assert await repo.count_rows("prompts") == 2

    other_seed = await stack.clients.generator.Generate(request("Say something rude.", seed=2))
    assert not other_seed.generations[0].cached
    assert await repo.count_rows("generations") == 3


async def test_list_models(stack: Stack) -> None:
    reply = await stack.clients.generator.ListModels(generator_pb2.ListModelsRequest())
    [m] = reply.models
    assert m.name == "gemma3-270m" and m.backend == "llama.cpp" and m.context_length == 512
    assert m.settings["template"] == "qa-v1"


@pytest.mark.parametrize(
    ("req", "code", "fragment"),
    [
        (request("hi", model="gpt-99"), grpc.StatusCode.NOT_FOUND, "unknown model 'gpt-99'"),
        (
            generator_pb2.GenerateRequest(model="gemma3-270m"),
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
            "must not contain NUL",
        ),
        # llama.cpp reads 2**32 - 1 as "random seed"; larger ones would wrap around.
        (request("ok", seed=2**32 - 1), grpc.StatusCode.INVALID_ARGUMENT, "seed must be in"),
        (
            generator_pb2.GenerateRequest(
                model="gemma3-270m",
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
    stack: Stack, req: generator_pb2.GenerateRequest, code: grpc.StatusCode, fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.generator.Generate(req)
    assert err.value.code() == code
    assert fragment in (err.value.details() or "")
    assert await stack.servicers["generator"].repo.count_rows("generations") == 0
