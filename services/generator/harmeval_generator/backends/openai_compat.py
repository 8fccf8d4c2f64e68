"""Any OpenAI-compatible server (vLLM's, TGI's messages API, llama.cpp's, OpenAI itself):
completions for base models, chat completions for models with a chat template.

The `openai` SDK is imported where it is used, so that looking the backends up (which imports
this module) does not load it for a generator that serves no such model.

The declared URL is the only one requests go to: it passes
:func:`harmeval.outbound.check_backend_url` and redirects are not followed. The key is registered
with :mod:`harmeval.secrets`, and what the server answers in an error reaches a message only
redacted and cut."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from harmeval.outbound import check_backend_url
from harmeval.params import GenerationParams
from harmeval.secrets import register_secret, scrub
from harmeval_generator.backends.base import (
    DEFAULT_STOP,
    Completion,
    Engine,
    EngineMisconfiguredError,
    EngineUnavailableError,
    ModelPrompt,
    PromptFormat,
    PromptTooLongError,
    RequestRejectedError,
    StreamState,
    chat_messages,
    completion_prompt,
)
from harmeval_generator.backends.registry import register_backend
from harmeval_generator.settings import GeneratorSettings

# Servers word context overflows differently; these fragments cover vLLM, llama.cpp and OpenAI.
_TOO_LONG = (
    "maximum context length",
    "context length",
    "exceed_context_size",
    "too long",
    "context_length_exceeded",
)


def _map_error(exc: Exception, base_url: str) -> Exception:
    import openai

    # An error body may echo the request (its key included): redacted and cut.
    message = scrub(str(exc))
    if isinstance(exc, openai.BadRequestError):
        if any(fragment in message.lower() for fragment in _TOO_LONG):
            return PromptTooLongError(f"the server at {base_url} refused the prompt: {message}")
        return RequestRejectedError(f"the server at {base_url} refused the request: {message}")
    if isinstance(exc, openai.UnprocessableEntityError):
        return RequestRejectedError(f"the server at {base_url} refused the request: {message}")
    if isinstance(
        exc, openai.AuthenticationError | openai.PermissionDeniedError | openai.NotFoundError
    ):
        return EngineMisconfiguredError(f"{base_url}: {message}")
    if isinstance(exc, openai.APIStatusError | openai.APIConnectionError):
        # A redirect (not followed) lands here too: the server is not where it was declared.
        return EngineUnavailableError(f"{base_url}: {message}")
    return exc


@dataclass(frozen=True, kw_only=True)
class OpenAIConfig:
    """A models-file entry's fields for `backend: openai`."""

    base_url: str  # the API root, e.g. http://vllm:8000/v1
    model: str  # the model name the server serves
    # The environment variable holding the API key (the key itself never is in the file).
    api_key_env: str | None = None
    prompt_format: PromptFormat = "completion"
    context_length: int = 4096
    timeout_s: float = 120.0
    # Requests the server takes at once (e.g. its vLLM's max_num_seqs); None: the service's.
    max_concurrency: int | None = None
    # A link-local or metadata-service address is refused unless this says so.
    allow_link_local: bool = False


@register_backend("openai", config=OpenAIConfig)
def build(name: str, config: OpenAIConfig, settings: GeneratorSettings) -> Engine:
    check_backend_url(config.base_url, allow_link_local=config.allow_link_local)
    api_key = os.environ.get(config.api_key_env or "", "sk-no-key-needed")
    if config.api_key_env:
        register_secret(api_key)
    engine = OpenAICompatEngine(
        name,
        config.base_url,
        config.model,
        api_key=api_key,
        prompt_format=config.prompt_format,
        context_length=config.context_length,
        timeout_s=config.timeout_s,
        max_concurrency=config.max_concurrency,
    )
    return engine


class OpenAICompatEngine(Engine):
    backend = "openai-compatible"

    def __init__(
        self,
        name: str,
        base_url: str,
        model: str,
        *,
        api_key: str = "sk-no-key-needed",
        prompt_format: PromptFormat = "completion",
        context_length: int = 4096,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        max_concurrency: int | None = None,
    ) -> None:
        import openai

        self.max_concurrency = max_concurrency
        self.name = name
        self.base_url = base_url
        self.model = model
        self.prompt_format = prompt_format
        self._context_length = context_length
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=max_retries,
            # The SDK's own client follows redirects; this one does not.
            http_client=openai.DefaultAsyncHttpxClient(follow_redirects=False),
        )

    @property
    def context_length(self) -> int:
        return self._context_length

    def settings(self) -> dict[str, str]:
        return {
            "base_url": self.base_url,
            "model": self.model,
            "prompt_format": self.prompt_format,
        }

    async def check_fits(self, prompt: ModelPrompt, params: GenerationParams) -> None:
        """The server counts tokens; an overflow comes back as PromptTooLongError from
        complete/stream with the server's own numbers."""

    def _request(self, prompt: ModelPrompt, params: GenerationParams) -> dict[str, Any]:
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        if self.prompt_format == "chat":
            common["messages"] = chat_messages(prompt)
            if params.stop:
                common["stop"] = list(params.stop)
        else:
            common["prompt"] = completion_prompt(prompt)
            common["stop"] = list(params.stop or DEFAULT_STOP)
        return common

    async def complete(self, prompt: ModelPrompt, params: GenerationParams) -> Completion:
        import openai

        started = time.perf_counter()
        request = self._request(prompt, params)
        try:
            if self.prompt_format == "chat":
                chat = await self._client.chat.completions.create(**request)
                choice_text = chat.choices[0].message.content or ""
                finish = chat.choices[0].finish_reason
                usage = chat.usage
            else:
                done = await self._client.completions.create(**request)
                choice_text = done.choices[0].text
                finish = done.choices[0].finish_reason
                usage = done.usage
        except openai.OpenAIError as exc:
            raise _map_error(exc, self.base_url) from exc
        return Completion(
            text=choice_text,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason="length" if finish == "length" else "stop",
            latency_seconds=time.perf_counter() - started,
        )

    async def stream(
        self, prompt: ModelPrompt, params: GenerationParams, state: StreamState
    ) -> AsyncIterator[str]:
        import openai

        request = self._request(prompt, params)
        request["stream"] = True
        # Ask for a final usage chunk; servers that ignore it leave the counts to chunks.
        request["stream_options"] = {"include_usage": True}
        try:
            if self.prompt_format == "chat":
                chunks: Any = await self._client.chat.completions.create(**request)
            else:
                chunks = await self._client.completions.create(**request)
            async with chunks:
                async for chunk in chunks:
                    if chunk.usage is not None:
                        state.prompt_tokens = chunk.usage.prompt_tokens
                        state.completion_tokens = chunk.usage.completion_tokens
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    text = (
                        choice.delta.content if self.prompt_format == "chat" else choice.text
                    ) or ""
                    if choice.finish_reason:
                        state.finish_reason = (
                            "length" if choice.finish_reason == "length" else "stop"
                        )
                    if text:
                        state.text_parts.append(text)
                        if chunk.usage is None:
                            state.completion_tokens += 1
                        yield text
        except openai.OpenAIError as exc:
            raise _map_error(exc, self.base_url) from exc

    async def close(self) -> None:
        await self._client.close()
