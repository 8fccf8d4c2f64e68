"""TgiEngine against the TGI contract fake, over real HTTP with the official client."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from harmeval.params import GenerationParams
from harmeval_generator.backends.base import (
    DEFAULT_STOP,
    EngineUnavailableError,
    ModelPrompt,
    PromptTooLongError,
    StreamState,
    completion_prompt,
)
from harmeval_generator.backends.tgi import TgiEngine
from tests.fakes.tgi_server import FakeTgi, Script, TgiScriptError, fake_tgi

# text-generation 0.7.0 calls pydantic's deprecated `.dict()` on every request.
pytestmark = pytest.mark.filterwarnings("ignore:The `dict` method is deprecated:DeprecationWarning")

PROMPT = ModelPrompt("What is the capital of France?")


def says(*tokens: str, end: str = "eos_token") -> Script:
    return lambda inputs, parameters: (list(tokens), end)


def forever(inputs: str, parameters: dict[str, Any]) -> tuple[list[str], str]:
    return [f" w{i}" for i in range(200)], "length"


@pytest.fixture
def paris() -> Iterator[FakeTgi]:
    with fake_tgi(says(" Paris", ".")) as fake:
        yield fake


async def started(fake: FakeTgi, **options: Any) -> TgiEngine:
    engine = TgiEngine("tgi-model", fake.base_url, **options)
    await engine.start()
    return engine


async def collect(
    engine: TgiEngine, params: GenerationParams, prompt: ModelPrompt = PROMPT
) -> tuple[list[str], StreamState]:
    state = StreamState()
    parts = [part async for part in engine.stream(prompt, params, state)]
    return parts, state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- /info -------------------------------------------------------------------------------


async def test_start_reads_info() -> None:
    with fake_tgi(says("x"), max_input_tokens=3000, max_total_tokens=4096) as fake:
        engine = await started(fake)
    assert engine.context_length == 4096
    assert engine.max_input_tokens == 3000
    assert engine.settings() == {
        "base_url": fake.base_url,
        "model_id": "fake-org/fake-base-model",
        "max_total_tokens": "4096",
        "template": "qa-v1",
    }


async def test_start_reads_tgi_1x_info() -> None:
    with fake_tgi(says("x"), legacy_info=True, max_input_tokens=1000, max_total_tokens=1512) as f:
        engine = await started(f)
    assert (engine.max_input_tokens, engine.context_length) == (1000, 1512)


async def test_configured_context_length_wins() -> None:
    with fake_tgi(says("x")) as fake:
        engine = await started(fake, context_length=512)
    assert engine.context_length == 512
    assert engine.settings()["max_total_tokens"] == "2048"


# --- complete() --------------------------------------------------------------------------


async def test_complete_eos(paris: FakeTgi) -> None:
    engine = await started(paris)
    out = await engine.complete(PROMPT, GenerationParams())
    assert out.text == " Paris."  # the special EOS token is not text
    assert out.finish_reason == "stop"
    assert out.completion_tokens == 3  # " Paris", ".", EOS: TGI counts the EOS token
    # decoder_input_details is not asked for, so TGI sends an empty prefill: 0 is documented.
    assert out.prompt_tokens == 0
    assert out.latency_seconds > 0
    assert out.ttft_seconds is None
    assert paris.requests[-1].inputs == completion_prompt(PROMPT)


async def test_complete_length() -> None:
    with fake_tgi(forever) as fake:
        engine = await started(fake)
        out = await engine.complete(PROMPT, GenerationParams(max_tokens=3))
    assert (out.text, out.finish_reason, out.completion_tokens) == (" w0 w1 w2", "length", 3)


async def test_complete_cuts_the_default_stop_sequence() -> None:
    # A base model inventing the next question: TGI stops once the text ends with the stop
    # sequence and returns it; the engine removes it, like llama.cpp does.
    script = says(" Paris.", "\n", "Question", ":", " What", " else?")
    with fake_tgi(script) as fake:
        engine = await started(fake)
        out = await engine.complete(PROMPT, GenerationParams())
    assert (out.text, out.finish_reason, out.completion_tokens) == (" Paris.", "stop", 4)


async def test_complete_cuts_a_custom_stop_sequence() -> None:
    with fake_tgi(says(" one", " two", " END", " three")) as fake:
        engine = await started(fake)
        out = await engine.complete(PROMPT, GenerationParams(stop=(" END",)))
    assert (out.text, out.finish_reason) == (" one two", "stop")


async def test_greedy_parameters_sent(paris: FakeTgi) -> None:
    engine = await started(paris)
    await engine.complete(PROMPT, GenerationParams(temperature=0.0, top_p=0.5, max_tokens=17))
    p = paris.requests[-1].parameters
    assert p["do_sample"] is False
    assert p["temperature"] is None  # TGI rejects 0, and any warper turns sampling on
    assert p["top_p"] is None
    assert p["max_new_tokens"] == 17
    assert p["stop"] == list(DEFAULT_STOP)
    assert p["seed"] == 0
    assert p["details"] is True
    assert p["decoder_input_details"] is False


async def test_sampling_parameters_sent(paris: FakeTgi) -> None:
    engine = await started(paris)
    params = GenerationParams(temperature=0.7, top_p=0.9, seed=42, stop=("\n\n", "###"))
    await engine.complete(PROMPT, params)
    p = paris.requests[-1].parameters
    assert (p["do_sample"], p["temperature"], p["top_p"], p["seed"]) == (True, 0.7, 0.9, 42)
    assert p["stop"] == ["\n\n", "###"]
    await engine.complete(PROMPT, GenerationParams(temperature=1.0, top_p=1.0))
    assert paris.requests[-1].parameters["top_p"] is None  # TGI wants top_p < 1


# --- stream() ----------------------------------------------------------------------------


async def test_stream_yields_tokens_in_order(paris: FakeTgi) -> None:
    engine = await started(paris)
    parts, state = await collect(engine, GenerationParams())
    assert parts == [" Paris", "."]
    assert state.text_parts == parts
    assert (state.completion_tokens, state.finish_reason, state.prompt_tokens) == (3, "stop", 0)
    request = paris.requests[-1]
    assert request.path == "/" and request.body["stream"] is True
    assert request.parameters["decoder_input_details"] is False
    assert paris.completed == 1 and not paris.disconnected.is_set()


async def test_stream_length() -> None:
    with fake_tgi(forever) as fake:
        engine = await started(fake)
        parts, state = await collect(engine, GenerationParams(max_tokens=4))
    assert "".join(parts) == " w0 w1 w2 w3"
    assert (state.completion_tokens, state.finish_reason) == (4, "length")


async def test_stream_never_yields_the_stop_sequence() -> None:
    script = says(" Paris.", "\n", "Question", ":", " What")
    with fake_tgi(script) as fake:
        engine = await started(fake)
        parts, state = await collect(engine, GenerationParams())
    assert "".join(parts) == " Paris."
    assert (state.completion_tokens, state.finish_reason) == (4, "stop")


async def test_stream_releases_text_that_was_not_a_stop_sequence() -> None:
    # "\n" could start "\nQuestion:": held back until "Note" shows it does not.
    with fake_tgi(says(" A", "\n", "Note", ".")) as fake:
        engine = await started(fake)
        parts, state = await collect(engine, GenerationParams())
    assert parts == [" A", "\nNote", "."]
    assert state.finish_reason == "stop"


# --- errors ------------------------------------------------------------------------------

TOO_LONG = ModelPrompt("word " * 60)


async def test_prompt_over_max_total_tokens() -> None:
    with fake_tgi(says("x"), max_input_tokens=100, max_total_tokens=64) as fake:
        engine = await started(fake)
        with pytest.raises(PromptTooLongError) as complete_error:
            await engine.complete(TOO_LONG, GenerationParams(max_tokens=16))
        with pytest.raises(PromptTooLongError) as stream_error:  # an SSE error event
            await collect(engine, GenerationParams(max_tokens=16), TOO_LONG)
    n = len(completion_prompt(TOO_LONG).split())
    server = (
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 64. "
        f"Given: {n} `inputs` tokens and 16 `max_new_tokens`"
    )
    assert str(complete_error.value) == f"{server}: {n + 16 - 64} tokens too long"
    assert str(stream_error.value) == str(complete_error.value)
    assert fake.completed == 0


async def test_prompt_over_max_input_tokens() -> None:
    with fake_tgi(says("x"), max_input_tokens=32, max_total_tokens=4096) as fake:
        engine = await started(fake)
        with pytest.raises(PromptTooLongError, match=r"`inputs` must have less than 32 tokens"):
            await engine.complete(TOO_LONG, GenerationParams(max_tokens=16))


async def test_check_fits_leaves_it_to_the_server() -> None:
    with fake_tgi(says("x"), max_total_tokens=64) as fake:
        engine = await started(fake)
        await engine.check_fits(TOO_LONG, GenerationParams(max_tokens=16))
    assert fake.calls == 0


async def test_other_validation_errors_are_value_errors(paris: FakeTgi) -> None:
    engine = await started(paris)
    too_many_stops = GenerationParams(stop=("a", "b", "c", "d", "e"))
    with pytest.raises(ValueError, match=r"`stop` supports up to 4 stop sequences\. Given: 5") as e:
        await engine.complete(PROMPT, too_many_stops)
    assert not isinstance(e.value, PromptTooLongError)


def failing(error_type: str, message: str, status: int | None = None) -> Script:
    def script(inputs: str, parameters: dict[str, Any]) -> tuple[list[str], str]:
        raise TgiScriptError(error_type, message, status)

    return script


@pytest.mark.parametrize(
    ("error_type", "message", "status"),
    [
        ("overloaded", "Model is overloaded", None),  # HTTP 429 / an SSE error event
        ("overloaded", "Model is overloaded", 503),  # HTTP 503 even when streaming
        ("generation", "Request failed during generation: CUDA out of memory", None),
        ("incomplete_generation", "Incomplete generation", None),
    ],
)
async def test_server_failures_are_unavailable(
    error_type: str, message: str, status: int | None
) -> None:
    with fake_tgi(failing(error_type, message, status)) as fake:
        engine = await started(fake)
        with pytest.raises(EngineUnavailableError, match=message):
            await engine.complete(PROMPT, GenerationParams())
        with pytest.raises(EngineUnavailableError, match=message):
            await collect(engine, GenerationParams())


async def test_server_down_is_unavailable() -> None:
    engine = TgiEngine("tgi-model", f"http://127.0.0.1:{free_port()}", context_length=2048)
    with pytest.raises(EngineUnavailableError):
        await engine.start()
    with pytest.raises(EngineUnavailableError):
        await engine.complete(PROMPT, GenerationParams())
    with pytest.raises(EngineUnavailableError):
        await collect(engine, GenerationParams())


async def test_timeout_is_unavailable() -> None:
    with fake_tgi(forever, token_delay_s=0.05) as fake:
        engine = await started(fake, timeout_s=0.3)
        with pytest.raises(EngineUnavailableError):
            await engine.complete(PROMPT, GenerationParams(max_tokens=100))


# --- cancellation ------------------------------------------------------------------------


async def test_cancelling_a_stream_closes_the_request() -> None:
    with fake_tgi(forever, token_delay_s=0.05) as fake:
        engine = await started(fake)
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in engine.stream(PROMPT, GenerationParams(max_tokens=150), StreamState()):
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(fake.disconnected.wait, 5)
    assert fake.completed == 0


async def test_leaving_a_stream_early_closes_the_request() -> None:
    with fake_tgi(forever, token_delay_s=0.05) as fake:
        engine = await started(fake)
        stream = engine.stream(PROMPT, GenerationParams(max_tokens=150), StreamState())
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
        assert await asyncio.to_thread(fake.disconnected.wait, 5)
    assert fake.completed == 0


async def test_cancelling_complete_closes_the_request() -> None:
    with fake_tgi(forever, token_delay_s=0.05) as fake:
        engine = await started(fake)
        task = asyncio.create_task(engine.complete(PROMPT, GenerationParams(max_tokens=150)))
        assert await asyncio.to_thread(fake.generating.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(fake.disconnected.wait, 5)
    assert fake.completed == 0


# --- the fake's own wire format (the routes the client does not use) ---------------------


def post(url: str, body: dict[str, Any]) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


async def test_fake_generate_route(paris: FakeTgi) -> None:
    body = {"inputs": "a b c", "parameters": {"max_new_tokens": 5, "decoder_input_details": True}}
    status, _, data = await asyncio.to_thread(post, f"{paris.base_url}/generate", body)
    response = json.loads(data)
    assert status == 200
    assert response["generated_text"] == " Paris."
    details = response["details"]
    assert details["finish_reason"] == "eos_token"
    assert details["generated_tokens"] == 3
    assert details["seed"] is None  # greedy
    assert [t["text"] for t in details["prefill"]] == ["a", "b", "c"]
    assert [(t["text"], t["special"]) for t in details["tokens"]] == [
        (" Paris", False),
        (".", False),
        ("</s>", True),
    ]
    status, _, data = await asyncio.to_thread(
        post, f"{paris.base_url}/generate", {"inputs": "a", "parameters": {"temperature": 0}}
    )
    assert status == 422
    assert json.loads(data) == {
        "error": "Input validation error: `temperature` must be strictly positive",
        "error_type": "validation",
    }


async def test_fake_generate_stream_route(paris: FakeTgi) -> None:
    body = {"inputs": "a b c", "parameters": {"max_new_tokens": 5, "details": True}}
    status, content_type, data = await asyncio.to_thread(
        post, f"{paris.base_url}/generate_stream", body
    )
    assert (status, content_type) == (200, "text/event-stream")
    events = [json.loads(line[5:]) for line in data.decode().split("\n\n") if line]
    assert [e["token"]["text"] for e in events] == [" Paris", ".", "</s>"]
    assert [e["index"] for e in events] == [1, 2, 3]
    assert [e["generated_text"] for e in events] == [None, None, " Paris."]
    assert events[-1]["details"] == {
        "finish_reason": "eos_token",
        "generated_tokens": 3,
        "seed": None,
        "input_length": 3,
    }
    assert all(e["details"] is None for e in events[:-1])
