"""A scripted in-process engine for generator service tests: a real `Engine` subclass that
answers without a model, so a test of the service's own behaviour (validation, storage, reuse,
streaming, error mapping) starts in milliseconds instead of loading Gemma.

Importing this module registers it as the backend ``scripted`` (tests only: the module lives
outside the service's backends package), so a models file can serve it like any backend::

    models:
      - {name: m, backend: scripted, context_length: 512, reply: "Sure, here it is."}

What it answers, deterministically:

* the text ``script(prompt, params)`` returns, by default :func:`default_reply` (words picked
  from the prompt's text and, when sampling, the seed: temperature 0 ignores the seed as a
  greedy decoder does, temperature > 0 gives another answer for another seed), or the
  config's fixed ``reply``;
* cut at the first stop sequence (``params.stop``, else the completion template's default),
  the stop sequence removed, finish reason "stop";
* cut at ``max_tokens`` tokens, finish reason "length";
* tokens are whitespace-separated words (each carrying its leading space): the prompt's
  tokens are the rendered completion prompt's words, and `check_fits` refuses what
  `context_length` cannot hold, with the same message as the real engines.

A script may raise an engine error (`EngineUnavailableError`, `RequestRejectedError`, …) to
test how the service answers it; `EngineUnavailableError` also makes the engine unhealthy.
`calls` records every generation asked of it (stored answers never reach it).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from harmeval.params import GenerationParams
from harmeval_generator.backends.base import (
    DEFAULT_STOP,
    Completion,
    Engine,
    EngineUnavailableError,
    ModelPrompt,
    StreamState,
    check_context,
    complete_by_streaming,
    completion_prompt,
)
from harmeval_generator.backends.registry import register_backend
from harmeval_generator.settings import GeneratorSettings

SCRIPTED = "scripted"
# The answer text for a prompt and parameters, before stop sequences and max_tokens cut it.
Script = Callable[[ModelPrompt, GenerationParams], str]

_TOKEN = re.compile(r"\s*\S+")
_WORDS = (
    *("the", "answer", "is", "that", "it", "depends", "on", "what", "you", "mean", "and"),
    *("why", "people", "ask", "about", "here", "some", "would", "say", "yes", "while"),
    *("others", "no", "so", "let", "me", "explain", "a", "little", "more"),
)
DEFAULT_REPLY_WORDS = 12


def tokens(text: str) -> list[str]:
    """The scripted engine's tokens: words with their leading whitespace."""
    return _TOKEN.findall(text)


def default_reply(prompt: ModelPrompt, params: GenerationParams) -> str:
    """Twelve words and a full stop, the same for the same prompt (and, when sampling, the same
    seed)."""
    key = f"{prompt.system_prompt}\x00{prompt.prompt}"
    if params.temperature > 0:
        key += f"\x00{params.seed}"
    rng = random.Random(key)
    return " " + " ".join(rng.choice(_WORDS) for _ in range(DEFAULT_REPLY_WORDS)) + "."


@dataclass(frozen=True, kw_only=True)
class ScriptedConfig:
    """A models-file entry's fields for `backend: scripted`."""

    context_length: int = 512
    # Every answer's text (then cut by stop sequences and max_tokens); None: default_reply.
    reply: str | None = None
    # Seconds between tokens (0: none, still a point where cancellation lands).
    token_delay_s: float = 0.0


class ScriptedEngine(Engine):
    backend = SCRIPTED
    in_process = True

    def __init__(
        self,
        name: str,
        *,
        script: Script = default_reply,
        context_length: int = 512,
        token_delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self.script = script
        self._context_length = context_length
        self.token_delay_s = token_delay_s
        self.calls: list[tuple[ModelPrompt, GenerationParams]] = []
        self.started = False
        self.closed = False
        self.died = False

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def healthy(self) -> bool:
        return not self.died

    async def start(self) -> None:
        self.started = True

    def settings(self) -> dict[str, str]:
        return {"template": "scripted-v1", "context_length": str(self._context_length)}

    def count_tokens(self, prompt: ModelPrompt) -> int:
        return len(tokens(completion_prompt(prompt)))

    async def check_fits(self, prompt: ModelPrompt, params: GenerationParams) -> None:
        check_context(self.count_tokens(prompt), params.max_tokens, self.context_length)

    def answer(self, prompt: ModelPrompt, params: GenerationParams) -> tuple[list[str], str]:
        """The answer's tokens and finish reason."""
        try:
            text = self.script(prompt, params)
        except EngineUnavailableError:
            self.died = True
            raise
        cuts = [i for i in (text.find(s) for s in params.stop or DEFAULT_STOP if s) if i >= 0]
        if cuts:
            text = text[: min(cuts)]
        pieces = tokens(text)
        if len(pieces) > params.max_tokens:
            return pieces[: params.max_tokens], "length"
        return pieces, "stop"

    async def stream(
        self, prompt: ModelPrompt, params: GenerationParams, state: StreamState
    ) -> AsyncIterator[str]:
        self.calls.append((prompt, params))
        pieces, finish = self.answer(prompt, params)
        state.prompt_tokens = self.count_tokens(prompt)
        for piece in pieces:
            await asyncio.sleep(self.token_delay_s)
            state.completion_tokens += 1
            state.text_parts.append(piece)
            yield piece
        state.finish_reason = finish

    async def complete(self, prompt: ModelPrompt, params: GenerationParams) -> Completion:
        return await complete_by_streaming(self, prompt, params)

    async def close(self) -> None:
        self.closed = True


@register_backend(SCRIPTED, config=ScriptedConfig)
def build(name: str, config: ScriptedConfig, settings: GeneratorSettings) -> Engine:
    reply = config.reply
    return ScriptedEngine(
        name,
        script=default_reply if reply is None else (lambda prompt, params: reply),
        context_length=config.context_length,
        token_delay_s=config.token_delay_s,
    )
