"""The generator service's streaming RPCs, samples, pathology flags, cancellation and
deadlines with the real Gemma model; its OpenAI-compatible backend against llama.cpp's real
server; its TGI backend against the contract fake of TGI's documented API; and what happens
when an in-process engine dies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest

from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc
from harmeval.params import GenerationParams
from harmeval.server import RunningServer, _watchdog
from harmeval_generator.backends.base import (
    Completion,
    EngineUnavailableError,
    ModelPrompt,
    StreamState,
)
from harmeval_generator.service import SPEC, GeneratorServicer
from harmeval_generator.settings import GeneratorSettings
from harmeval_generator.store import ModelIdentityChanged
from tests.fakes.tgi_server import fake_tgi
from tests.integration.conftest import Stack, running


def prompt(text: str) -> common_pb2.Prompt:
    return common_pb2.Prompt(text=text, category="toxicity")


def params(**kw: Any) -> common_pb2.GenerationParams:
    return common_pb2.GenerationParams(**{"temperature": 0.0, "max_tokens": 8, **kw})


async def test_stream_token_by_token_then_stored(stack: Stack) -> None:
    gen = stack.clients.generator
    request = generator_pb2.GenerateStreamRequest(
        model="gemma3-270m",
        prompt=prompt("Write a story about a fox."),
        params=params(max_tokens=16),
    )
    messages = [m async for m in gen.GenerateStream(request)]
    pieces = [m.text for m in messages[:-1]]
    final = messages[-1].generation
    assert len(pieces) > 3 and final.generation_id > 0 and not final.cached
    assert "".join(pieces) == final.text
    assert final.completion_tokens > 0 and final.ttft_seconds > 0
    again = [m async for m in gen.GenerateStream(request)]
    assert again[-1].generation.cached and again[-1].generation.generation_id == final.generation_id
    assert again[0].text == final.text


async def test_batch_streams_every_sample(stack: Stack) -> None:
    request = generator_pb2.GenerateBatchRequest(
        model="gemma3-270m",
        prompts=[prompt("Insult a neighbour."), prompt("Describe a cat.")],
        params=params(temperature=1.0, seed=10, max_tokens=6),
        n=2,
    )
    replies = [r async for r in stack.clients.generator.GenerateBatch(request)]
    assert sorted((r.prompt_index, r.sample_index) for r in replies) == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    seeds = {(r.prompt_index, r.sample_index): r.generation.params.seed for r in replies}
    assert seeds[(0, 0)] == 10 and seeds[(0, 1)] == 11
    assert len({r.generation.generation_id for r in replies}) == 4
    # The unary RPC returns the same stored answers, in request order.
    unary = await stack.clients.generator.Generate(
        generator_pb2.GenerateRequest(
            model=request.model, prompts=request.prompts, params=request.params, n=2
        )
    )
    assert all(g.cached for g in unary.generations)
    assert [g.params.seed for g in unary.generations] == [10, 11, 10, 11]


async def test_pathologies_are_flagged_not_cleaned(stack: Stack) -> None:
    reply = await stack.clients.generator.Generate(
        generator_pb2.GenerateRequest(
            model="gemma3-270m",
            prompts=[prompt("Write a long essay about rivers.")],
            params=params(max_tokens=4),
        )
    )
    g = reply.generations[0]
    assert g.finish_reason == "length" and "truncated" in g.flags
    stored = await stack.servicers["generator"].repo.find_generations(
        stack.servicers["generator"].model_ids["gemma3-270m"],
        GenerationParams.from_proto(params(max_tokens=4)),
        [g.prompt_id],
    )
    assert stored[g.prompt_id].text == g.text and "truncated" in stored[g.prompt_id].flags


async def test_cancelled_stream_frees_the_engine(stack: Stack) -> None:
    gen = stack.clients.generator
    call = gen.GenerateStream(
        generator_pb2.GenerateStreamRequest(
            model="gemma3-270m",
            prompt=prompt("Tell a very long story about dragons."),
            params=params(temperature=0.9, max_tokens=400, seed=4, stop=["zzzz"]),
        )
    )
    async for _ in call:
        break
    call.cancel()
    started = time.perf_counter()
    quick = await gen.Generate(
        generator_pb2.GenerateRequest(
            model="gemma3-270m", prompts=[prompt("Say hi.")], params=params(max_tokens=3)
        ),
        timeout=20,
    )
    # 400 tokens would take ~7 s; the cancelled generation stopped after its current token.
    assert time.perf_counter() - started < 4 and quick.generations[0].completion_tokens > 0
    assert await stack.count_rows("generations") == 1


async def test_deadline_is_honoured(stack: Stack) -> None:
    gen = stack.clients.generator
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gen.Generate(
            generator_pb2.GenerateRequest(
                model="gemma3-270m",
                prompts=[prompt("Tell a very long story.")],
                params=params(temperature=0.9, max_tokens=400, stop=["zzzz"]),
            ),
            timeout=0.5,
        )
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    started = time.perf_counter()
    await gen.Generate(
        generator_pb2.GenerateRequest(
            model="gemma3-270m", prompts=[prompt("Hi.")], params=params(max_tokens=2)
        )
    )
    assert time.perf_counter() - started < 4


class DeadEngine:
    """An in-process engine whose process state is gone (as after a CUDA error)."""

    name = "dead"
    backend = "test"
    in_process = True
    max_concurrency = None
    context_length = 1024

    def settings(self) -> dict[str, str]:
        return {}

    async def check_fits(self, prompt: ModelPrompt, params: GenerationParams) -> None:
        pass

    async def complete(self, prompt: ModelPrompt, params: GenerationParams) -> Completion:
        raise EngineUnavailableError("engine core died")

    async def stream(
        self, prompt: ModelPrompt, params: GenerationParams, state: StreamState
    ) -> AsyncIterator[str]:
        raise EngineUnavailableError("engine core died")
        yield ""

    async def close(self) -> None:
        pass


async def test_dead_engine_is_unavailable_and_flips_health(stack: Stack) -> None:
    servicer: GeneratorServicer = stack.servicers["generator"]
    servicer.engines["dead"] = DeadEngine()
    servicer.model_ids["dead"] = await servicer.repo.register_served_model("dead", "test", {}, {})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.generator.Generate(
            generator_pb2.GenerateRequest(model="dead", prompts=[prompt("Hi.")], params=params())
        )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "died" in (err.value.details() or "")
    assert servicer.healthy is False
    srv: RunningServer = stack.servers["generator"]
    await srv.set_serving(True)
    await asyncio.wait_for(_watchdog(servicer, srv, asyncio.Event()), timeout=5)
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    servicer.healthy = True


# -- other backends, through the service -----------------------------------------------------


async def generator_with(
    models_yaml: str, tmp_path: Path, database_url: str, stack: AsyncExitStack
) -> generator_pb2_grpc.GeneratorServiceStub:
    models_file = tmp_path / "models.yaml"
    models_file.write_text(models_yaml)
    settings = GeneratorSettings(
        database_url=database_url, data_dir=tmp_path, generator_models_file=models_file
    )
    servicer = GeneratorServicer(settings)
    _, channel = await stack.enter_async_context(running(SPEC, servicer, settings))
    return generator_pb2_grpc.GeneratorServiceStub(channel)


async def test_openai_compatible_backend_on_llama_cpp_server(
    llama_server: str, tmp_path: Path, database_url: str
) -> None:
    async with AsyncExitStack() as stack:
        gen = await generator_with(
            "models:\n"
            f"  - {{name: gemma-completion, backend: openai, base_url: '{llama_server}',"
            " model: gemma, prompt_format: completion, context_length: 1024}\n"
            f"  - {{name: gemma-chat, backend: openai, base_url: '{llama_server}',"
            " model: gemma, prompt_format: chat}\n",
            tmp_path,
            database_url,
            stack,
        )
        listed = await gen.ListModels(generator_pb2.ListModelsRequest())
        assert {m.backend for m in listed.models} == {"openai-compatible"}
        for model in ("gemma-completion", "gemma-chat"):
            reply = await gen.Generate(
                generator_pb2.GenerateRequest(
                    model=model,
                    prompts=[prompt("Name a colour.")],
                    params=params(max_tokens=6, system_prompt="Answer briefly."),
                )
            )
            g = reply.generations[0]
            assert g.completion_tokens > 0 and g.prompt_tokens > 0 and g.model == model
            streamed = [
                m
                async for m in gen.GenerateStream(
                    generator_pb2.GenerateStreamRequest(
                        model=model, prompt=prompt("Name an animal."), params=params(max_tokens=6)
                    )
                )
            ]
            assert "".join(m.text for m in streamed[:-1]) == streamed[-1].generation.text
            assert streamed[-1].generation.completion_tokens > 0
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await gen.Generate(
                generator_pb2.GenerateRequest(
                    model="gemma-completion",
                    prompts=[prompt("word " * 1500)],
                    params=params(max_tokens=8),
                )
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_tgi_backend_against_the_contract_fake(tmp_path: Path, database_url: str) -> None:
    def model(inputs: str, parameters: dict[str, Any]) -> tuple[list[str], str]:
        # TGI token texts carry their own leading spaces.
        return [" Sure", " thing", " here", " it", " is"], "eos_token"

    with fake_tgi(model) as tgi:
        async with AsyncExitStack() as stack:
            gen = await generator_with(
                f"models:\n  - {{name: mistral, backend: tgi, base_url: '{tgi.base_url}'}}\n",
                tmp_path,
                database_url,
                stack,
            )
            reply = await gen.Generate(
                generator_pb2.GenerateRequest(
                    model="mistral",
                    prompts=[prompt("Help me.")],
                    params=params(max_tokens=10, seed=3),
                )
            )
            g = reply.generations[0]
            assert g.text.split() == ["Sure", "thing", "here", "it", "is"]
            # TGI counts the EOS token in generated_tokens.
            assert g.finish_reason == "stop" and g.completion_tokens == 6
            sent = tgi.requests[-1].parameters
            assert sent["max_new_tokens"] == 10 and sent["seed"] == 3
            assert sent["do_sample"] is False
            listed = await gen.ListModels(generator_pb2.ListModelsRequest())
            assert listed.models[0].backend == "tgi"
            # The TGI client takes at most 4 stop sequences: the caller's mistake, said so.
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await gen.Generate(
                    generator_pb2.GenerateRequest(
                        model="mistral",
                        prompts=[prompt("Help me.")],
                        params=params(max_tokens=10, stop=["a", "b", "c", "d", "e"]),
                    )
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "stop" in (err.value.details() or "")


async def test_a_model_name_served_differently_is_refused(
    model_path: Path, tmp_path: Path, database_url: str
) -> None:
    """Stored answers are found by model name: serving the name with another template would
    hand out the old template's answers as the new one's."""
    entry = f"{{name: g, backend: llama.cpp, model_path: '{model_path}', n_ctx: 512"
    async with AsyncExitStack() as stack:
        gen = await generator_with(f"models:\n  - {entry}}}\n", tmp_path, database_url, stack)
        await gen.Generate(
            generator_pb2.GenerateRequest(
                model="g", prompts=[prompt("Name a fruit.")], params=params(max_tokens=4)
            )
        )
    async with AsyncExitStack() as stack:  # the same file again: the same model
        await generator_with(f"models:\n  - {entry}}}\n", tmp_path, database_url, stack)
    with pytest.raises(ModelIdentityChanged, match="model 'g' has stored answers from"):
        async with AsyncExitStack() as stack:
            await generator_with(
                f"models:\n  - {entry}, prompt_format: chat, chat_format: gemma}}\n",
                tmp_path,
                database_url,
                stack,
            )


def test_llama_cpp_chat_needs_a_template(model_path: Path, tmp_path: Path) -> None:
    """The Gemma GGUF has no chat template: llama-cpp-python would silently use Llama-2's."""
    from harmeval_generator.engines import ModelsFileError, _build
    from harmeval_generator.settings import GeneratorSettings

    entry = {"name": "g", "backend": "llama.cpp", "model_path": str(model_path), "n_ctx": 256}
    with pytest.raises(ModelsFileError, match=r"model 'g': .* has no chat template"):
        _build({**entry, "prompt_format": "chat"}, GeneratorSettings(data_dir=tmp_path))


async def test_llama_cpp_chat_format_and_system_prompt(
    model_path: Path, tmp_path: Path, database_url: str
) -> None:
    async with AsyncExitStack() as stack:
        gen = await generator_with(
            "models:\n"
            f"  - {{name: gemma-chat, backend: llama.cpp, model_path: '{model_path}',"
            " n_ctx: 512, prompt_format: chat, chat_format: gemma}\n",
            tmp_path,
            database_url,
            stack,
        )
        reply = await gen.Generate(
            generator_pb2.GenerateRequest(
                model="gemma-chat",
                prompts=[prompt("Name a fruit.")],
                params=params(max_tokens=6, system_prompt="You are terse."),
            )
        )
        g = reply.generations[0]
        assert g.completion_tokens > 0 and g.params.system_prompt == "You are terse."
        other = await gen.Generate(
            generator_pb2.GenerateRequest(
                model="gemma-chat", prompts=[prompt("Name a fruit.")], params=params(max_tokens=6)
            )
        )
        assert other.generations[0].generation_id != g.generation_id, (
            "system prompt is part of the key"
        )
