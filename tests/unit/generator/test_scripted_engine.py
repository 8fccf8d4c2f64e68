"""The scripted engine the service tests use keeps the engine contract: deterministic answers,
max_tokens, stop sequences and seeds honoured, the context checked."""

from __future__ import annotations

import pytest

from harmeval.params import GenerationParams
from harmeval_generator.backends.base import (
    EngineUnavailableError,
    ModelPrompt,
    PromptTooLongError,
    StreamState,
)
from tests.fakes.scripted_engine import DEFAULT_REPLY_WORDS, ScriptedEngine

PROMPT = ModelPrompt("Tell me a secret.")


def says(text: str) -> ScriptedEngine:
    return ScriptedEngine("m", script=lambda prompt, params: text)


async def test_greedy_answers_ignore_the_seed_sampled_ones_follow_it() -> None:
    engine = ScriptedEngine("m")

    async def text(**params: object) -> str:
        return (await engine.complete(PROMPT, GenerationParams(**params))).text  # type: ignore[arg-type]

    assert await text(seed=1) == await text(seed=2)
    assert await text(temperature=1.0, seed=1) == await text(temperature=1.0, seed=1)
    assert await text(temperature=1.0, seed=1) != await text(temperature=1.0, seed=2)
    assert await text() != (await engine.complete(ModelPrompt("Other."), GenerationParams())).text
    done = await engine.complete(PROMPT, GenerationParams(max_tokens=64))
    assert done.completion_tokens == DEFAULT_REPLY_WORDS and done.finish_reason == "stop"
    assert done.prompt_tokens == 6  # "Question:", "Tell", "me", "a", "secret.", "\nAnswer:"
    assert len(engine.calls) == 9


async def test_max_tokens_cuts_with_finish_reason_length() -> None:
    done = await says(" one two three four").complete(PROMPT, GenerationParams(max_tokens=3))
    assert done.text == " one two three" and done.completion_tokens == 3
    assert done.finish_reason == "length"


@pytest.mark.parametrize(
    ("stop", "text"),
    [((), " Sure, here"), (("here",), " Sure,"), (("zzz",), " Sure, here\nQuestion: next?")],
)
async def test_stop_sequences_end_the_answer_and_are_removed(
    stop: tuple[str, ...], text: str
) -> None:
    engine = says(" Sure, here\nQuestion: next?")
    done = await engine.complete(PROMPT, GenerationParams(max_tokens=64, stop=stop))
    assert done.text == text and done.finish_reason == "stop"


async def test_stream_yields_tokens_and_fills_the_state() -> None:
    state = StreamState()
    pieces = [p async for p in says(" a b c").stream(PROMPT, GenerationParams(max_tokens=2), state)]
    assert pieces == [" a", " b"] and state.completion_tokens == 2
    assert state.finish_reason == "length" and "".join(state.text_parts) == " a b"


async def test_check_fits_refuses_what_the_context_cannot_hold() -> None:
    engine = ScriptedEngine("m", context_length=20)
    await engine.check_fits(PROMPT, GenerationParams(max_tokens=8))
    with pytest.raises(PromptTooLongError, match="tokens too long"):
        await engine.check_fits(ModelPrompt("word " * 20), GenerationParams(max_tokens=8))


async def test_a_script_that_says_the_engine_died_makes_it_unhealthy() -> None:
    def dead(prompt: ModelPrompt, params: GenerationParams) -> str:
        raise EngineUnavailableError("engine core died")

    engine = ScriptedEngine("m", script=dead)
    assert engine.healthy and engine.in_process
    with pytest.raises(EngineUnavailableError):
        await engine.complete(PROMPT, GenerationParams())
    assert not engine.healthy
