"""The one interface every serving engine implements, and what they share."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, get_args

from harmeval.params import GenerationParams

# Base models have no chat template: they are prompted completion-style.
COMPLETION_TEMPLATE = "Question: {prompt}\nAnswer:"
TEMPLATE_VERSION = "qa-v1"
# Base models tend to invent the next question; cut there.
DEFAULT_STOP = ("\nQuestion:",)

# How a prompt reaches a model: completion-style (base models) or through its chat template.
PromptFormat = Literal["completion", "chat"]
PROMPT_FORMATS: tuple[str, ...] = get_args(PromptFormat)


class PromptTooLongError(ValueError):
    """The prompt plus max_tokens does not fit the model's context; says by how much."""


class EngineUnavailableError(RuntimeError):
    """The engine died or cannot be reached: the service answers UNAVAILABLE and flips health."""


class RequestRejectedError(ValueError):
    """The engine refused these parameters or this prompt for a reason other than its length
    (e.g. TGI takes at most 4 stop sequences): the caller's request is invalid."""


class EngineMisconfiguredError(RuntimeError):
    """The backend refuses every request as this engine is configured (a wrong API key, an
    unknown model name): not an outage a retry would fix."""


@dataclass(frozen=True)
class ModelPrompt:
    """What one generation asks of an engine."""

    prompt: str
    system_prompt: str = ""


@dataclass(frozen=True, kw_only=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    # "stop" (natural end or a stop sequence) or "length" (cut at max_tokens).
    finish_reason: str
    latency_seconds: float
    # Time to first token when the engine streamed; None when it did not.
    ttft_seconds: float | None = None


@dataclass(kw_only=True)
class StreamState:
    """Filled in by `Engine.stream` as it goes; complete once the stream is exhausted."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Set from the engine's last event; None means the stream ended without one.
    finish_reason: str | None = None
    text_parts: list[str] = field(default_factory=list)

    def completion(self, started: float, first_token_at: float | None) -> Completion:
        """The finished generation; times are `time.perf_counter()` readings."""
        if self.finish_reason is None:
            # Every engine ends a stream by saying why; a stream that just stops was cut off,
            # and storing its text would serve a partial answer as complete from then on.
            raise EngineUnavailableError("the stream ended without a finish reason (cut off?)")
        return Completion(
            text="".join(self.text_parts),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            finish_reason=self.finish_reason,
            latency_seconds=time.perf_counter() - started,
            ttft_seconds=None if first_token_at is None else first_token_at - started,
        )


class Engine(ABC):
    """One served model. Every backend's engine subclasses this: the abstract methods are what
    an engine must do, the rest has defaults an engine overrides when it needs to."""

    # Set by the engine: the name clients ask for and the backend stored with its answers.
    name: str
    backend: str
    # True when the engine runs inside this process (llama.cpp, vLLM): an engine that dies
    # cannot be recovered there, so the service flips its health and lets the pod restart.
    in_process: bool = False
    # Requests the engine serves at once (continuous batching: vLLM's max_num_seqs; llama.cpp
    # in process: 1); the service never sends it more, across all calls. None: the service's
    # HARMEVAL_GENERATOR_CONCURRENCY.
    max_concurrency: int | None = None

    @property
    @abstractmethod
    def context_length(self) -> int: ...

    @property
    def healthy(self) -> bool:
        """Whether the engine can still serve; an engine that can tell it died says False."""
        return True

    async def start(self) -> None:  # noqa: B027 (deliberately empty: most engines need none)
        """Called once after construction, before the first request (e.g. to read what a
        server serves); the default does nothing."""

    @abstractmethod
    def settings(self) -> dict[str, str]:
        """What identifies how this model is served (shown by ListModels)."""

    @abstractmethod
    async def check_fits(self, prompt: ModelPrompt, params: GenerationParams) -> None:
        """Raises PromptTooLongError when the prompt and max_tokens exceed the context."""

    @abstractmethod
    async def complete(self, prompt: ModelPrompt, params: GenerationParams) -> Completion:
        """One whole generation. Cancelling the awaiting task frees the engine's slot."""

    @abstractmethod
    def stream(
        self, prompt: ModelPrompt, params: GenerationParams, state: StreamState
    ) -> AsyncIterator[str]:
        """Yields text as the engine produces it; fills `state` (tokens, finish reason)."""

    @abstractmethod
    async def close(self) -> None:
        """Releases what the engine holds; called once, when the service stops."""


async def complete_by_streaming(
    engine: Engine, prompt: ModelPrompt, params: GenerationParams
) -> Completion:
    """A whole generation from an engine's stream, so cancelling it stops the engine too."""
    started, first = time.perf_counter(), None
    state = StreamState()
    async for _ in engine.stream(prompt, params, state):
        first = first or time.perf_counter()
    return state.completion(started, first)


def check_context(n_prompt: int, max_tokens: int, context_length: int) -> None:
    """Raises PromptTooLongError, saying by how much, when prompt + max_tokens exceed it."""
    budget = context_length - max_tokens
    if n_prompt > budget:
        raise PromptTooLongError(
            f"prompt is {n_prompt} tokens; with max_tokens={max_tokens} the context of "
            f"{context_length} tokens leaves room for {budget}: {n_prompt - budget} tokens too long"
        )


def completion_prompt(p: ModelPrompt) -> str:
    """The completion-style rendering for base models (system prompt as a preamble)."""
    body = COMPLETION_TEMPLATE.format(prompt=p.prompt)
    return f"{p.system_prompt}\n\n{body}" if p.system_prompt else body


def chat_messages(p: ModelPrompt) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": p.system_prompt}] if p.system_prompt else []
    return [*messages, {"role": "user", "content": p.prompt}]
