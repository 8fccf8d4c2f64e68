"""Hugging Face text-generation-inference (TGI) over HTTP, through its official Python client.

TGI's native `/generate` API is completion-style: the prompt is rendered here with
`completion_prompt` (the same "Question: …\\nAnswer:" template as the embedded llama.cpp
engine), which is right for base models. Chat models served by TGI should be reached through
the OpenAI-compatible backend instead, pointed at TGI's messages API (`/v1/chat/completions`),
so that TGI applies the model's own chat template.

What the wire gives us, and what it does not:

* `text_generation.AsyncClient` posts to TGI's root route (`POST /`, `"stream": false|true`),
  which answers like `/generate` (wrapped in a list) or `/generate_stream` (Server-Sent Events).
* Prompt tokens: TGI lists the prompt's tokens in `details.prefill` only when asked for
  `decoder_input_details`, which costs prompt log-probabilities and is refused when streaming.
  We do not ask, so `prompt_tokens` is `len(details.prefill)` when a server sends it and 0
  otherwise. (Newer TGI also reports the count in the `x-prompt-tokens` header and in the final
  stream event's `details.input_length`; text-generation 0.7.0 drops both.)
* Stop sequences: TGI stops when the text *ends with* a stop sequence and returns the text
  with it; like llama.cpp and OpenAI servers, this engine removes it (in `stream` too, by
  holding back text that could be the start of a stop sequence until it is known not to be).
* Prompt length is validated by TGI itself, with its tokenizer: there is no cheap, exact count
  here, so `check_fits` does nothing and the server's validation error comes back from
  `complete`/`stream` as `PromptTooLongError`, carrying TGI's message.
* Cancelling the task that awaits `complete()` or iterates `stream()` closes the HTTP request;
  TGI drops a request whose client went away and frees its slot in the batch.
* Redirects are never followed (a 3xx fails the request): the declared URL is the only one
  requests go to (:mod:`harmeval.outbound`).

`text_generation` (and aiohttp, pydantic) are imported where they are used, so that looking the
backends up (which imports this module) does not load them for a generator that serves no TGI
model. It is the generator's `tgi` extra, not a core dependency: the CPU image and the
development install have it, the GPU image does not (text-generation 0.7.0 requires
huggingface-hub<1.0, vLLM >=1.31). Without it an engine of this backend is not built: the
models-file entry fails with `MISSING_CLIENT`, naming the model.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from harmeval.outbound import check_backend_url
from harmeval.params import GenerationParams
from harmeval.secrets import scrub
from harmeval_generator.backends.base import (
    DEFAULT_STOP,
    TEMPLATE_VERSION,
    Completion,
    Engine,
    EngineUnavailableError,
    ModelPrompt,
    PromptTooLongError,
    RequestRejectedError,
    StreamState,
    completion_prompt,
)
from harmeval_generator.backends.registry import register_backend
from harmeval_generator.settings import GeneratorSettings

logger = logging.getLogger(__name__)

# TGI's router messages (router/src/validation.rs) for a prompt that does not fit.
_MAX_TOTAL = re.compile(
    r"`inputs` tokens \+ `max_new_tokens` must be <= (\d+)\. "
    r"Given: (\d+) `inputs` tokens and (\d+) `max_new_tokens`"
)
_INPUT_LENGTH = re.compile(r"`inputs` must have less than (\d+) tokens\. Given: (\d+)")


@functools.cache
def _unavailable() -> tuple[type[BaseException], ...]:
    """Errors that mean TGI (or whatever is in front of it) cannot serve right now."""
    import aiohttp
    import pydantic
    from text_generation import errors

    return (
        errors.OverloadedError,  # max_concurrent_requests reached (429)
        errors.RateLimitExceededError,  # 429 from a proxy or the Inference API
        errors.GenerationError,  # the shard failed mid-generation (424), e.g. out of memory
        errors.IncompleteGenerationError,  # the stream ended without a final token (500)
        errors.ShardNotReadyError,
        errors.ShardTimeoutError,
        errors.NotFoundError,  # base_url does not point at TGI
        errors.UnknownError,  # any other status, 5xx included
        aiohttp.ClientError,  # refused, reset, bad status line, non-JSON error body…
        TimeoutError,  # timeout_s elapsed (aiohttp raises asyncio.TimeoutError == TimeoutError)
        json.JSONDecodeError,  # a stream event that is not JSON
        KeyError,  # an error body without "error", a non-list answer from POST /
        pydantic.ValidationError,  # an answer that does not have TGI's shape
    )


_REDIRECTS = (301, 302, 303, 307, 308)

MISSING_CLIENT = (
    "the tgi backend needs the text-generation package (harmeval-generator[tgi]), which this"
    " installation does not have (the GPU image serves vllm: reach a TGI server from it with"
    " backend openai and TGI's messages API, or serve the model from the CPU image)"
)


def _require_client() -> None:
    """A ValueError when text_generation cannot be imported: the models file names a backend
    this installation cannot serve (engines.py names the model), not an ImportError."""
    try:
        import text_generation  # noqa: F401
    except ImportError:
        raise ValueError(MISSING_CLIENT) from None


@functools.cache
def _refuse_redirects() -> None:
    """text_generation's client opens an aiohttp session per request, with no way to pass it
    options, and aiohttp follows redirects by default: the sessions it opens get a middleware
    failing any redirect instead (once per process; text_generation alone is affected)."""
    import aiohttp
    from text_generation import client

    async def refuse(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        if response.status in _REDIRECTS:
            response.release()
            raise aiohttp.ClientResponseError(
                response.request_info,
                response.history,
                status=response.status,
                message="redirect not followed",
            )
        return response

    def session(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(*args, middlewares=(refuse,), **kwargs)

    client.ClientSession = session


@dataclass(frozen=True, kw_only=True)
class TgiConfig:
    """A models-file entry's fields for `backend: tgi`."""

    base_url: str  # the server's root, e.g. http://tgi:8080
    timeout_s: float = 120.0  # bounds a whole request, streamed ones included
    context_length: int | None = None  # None: TGI's max_total_tokens (from /info)
    # Requests the server takes at once (its --max-concurrent-requests); None: the service's.
    max_concurrency: int | None = None
    # A link-local or metadata-service address is refused unless this says so.
    allow_link_local: bool = False


@register_backend("tgi", config=TgiConfig)
def build(name: str, config: TgiConfig, settings: GeneratorSettings) -> Engine:
    check_backend_url(config.base_url, allow_link_local=config.allow_link_local)
    return TgiEngine(
        name,
        config.base_url,
        timeout_s=config.timeout_s,
        context_length=config.context_length,
        max_concurrency=config.max_concurrency,
    )


class TgiEngine(Engine):
    """One model served by a TGI server at `base_url` (its root, e.g. http://tgi:8080)."""

    backend = "tgi"

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_s: float = 120.0,
        context_length: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        """`timeout_s` bounds a whole request, streamed ones included.

        `context_length` overrides what `start()` learns from `/info` (max_total_tokens).
        A ValueError (`MISSING_CLIENT`) where text_generation is not installed."""
        _require_client()
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._context_length = context_length
        self.max_concurrency = max_concurrency
        self.model_id = ""
        self.max_total_tokens: int | None = None
        self.max_input_tokens: int | None = None
        from text_generation import AsyncClient

        _refuse_redirects()
        self._client = AsyncClient(self.base_url, timeout=timeout_s)

    async def start(self) -> None:
        """Reads `GET /info`: the served model and its token limits."""
        import aiohttp

        url = f"{self.base_url}/info"
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s)
                ) as session,
                session.get(url, allow_redirects=False) as resp,
            ):
                if resp.status != 200:
                    raise EngineUnavailableError(f"GET {url} answered HTTP {resp.status}")
                info = await resp.json()
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise EngineUnavailableError(
                f"TGI at {self.base_url} is unreachable: {scrub(repr(exc))}"
            ) from exc
        if not isinstance(info, dict) or "max_total_tokens" not in info:
            raise EngineUnavailableError(
                f"GET {url} did not answer TGI's info: {scrub(repr(info))}"
            )
        self.model_id = str(info.get("model_id", ""))
        self.max_total_tokens = int(info["max_total_tokens"])
        # TGI 2.x says max_input_tokens; 1.x said max_input_length.
        max_input = info.get("max_input_tokens", info.get("max_input_length"))
        self.max_input_tokens = int(max_input) if max_input is not None else None
        if self._context_length is None:
            self._context_length = self.max_total_tokens
        elif self._context_length != self.max_total_tokens:
            logger.warning(
                "%s: context_length=%d configured, TGI serves max_total_tokens=%d",
                self.name,
                self._context_length,
                self.max_total_tokens,
            )
        logger.info(
            "%s: TGI %s serves %s (max_input_tokens=%s, max_total_tokens=%d)",
            self.name,
            info.get("version", "?"),
            self.model_id,
            self.max_input_tokens,
            self.max_total_tokens,
        )

    @property
    def context_length(self) -> int:
        if self._context_length is None:
            raise RuntimeError(f"{self.name}: start() has not read TGI's /info yet")
        return self._context_length

    def settings(self) -> dict[str, str]:
        return {
            "base_url": self.base_url,
            "model_id": self.model_id,
            "max_total_tokens": str(self.max_total_tokens or ""),
            "template": TEMPLATE_VERSION,
        }

    async def check_fits(self, prompt: ModelPrompt, params: GenerationParams) -> None:
        """Does nothing: TGI validates prompt length with the model's tokenizer, and a prompt
        that does not fit fails `complete`/`stream` with `PromptTooLongError` (TGI's message).
        A character-count guess here would reject prompts that fit, or pass ones that do not."""

    async def complete(self, prompt: ModelPrompt, params: GenerationParams) -> Completion:
        stops = _stops(params)
        started = time.perf_counter()
        try:
            # Awaited in the caller's task: cancelling it closes the request.
            response = await self._client.generate(
                completion_prompt(prompt),
                **_sampling(params, stops),
                decoder_input_details=False,
            )
        except Exception as exc:
            if (translated := _translate(exc, self.base_url)) is None:
                raise
            raise translated from exc
        details = response.details
        finish = _finish_value(details.finish_reason)
        text = str(response.generated_text)
        if finish == "stop_sequence":
            text = _strip_stop(text, stops)
        return Completion(
            text=text,
            prompt_tokens=len(details.prefill or ()),
            completion_tokens=int(details.generated_tokens),
            finish_reason=_finish_reason(finish),
            latency_seconds=time.perf_counter() - started,
        )

    async def stream(
        self, prompt: ModelPrompt, params: GenerationParams, state: StreamState
    ) -> AsyncIterator[str]:
        """Yields text as TGI streams tokens (special tokens skipped, stop sequence removed).

        `state.prompt_tokens` stays 0: the final event's `input_length` is dropped by the
        client. `completion_tokens` and `finish_reason` come from the final event's details."""
        stops = _stops(params)
        held = ""  # the tail that may be the start of a stop sequence: not yielded yet
        n_events = 0
        events = self._client.generate_stream(completion_prompt(prompt), **_sampling(params, stops))
        # aclosing: leaving early (break, cancellation, GeneratorExit) closes the HTTP request.
        async with aclosing(events):
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    if (translated := _translate(exc, self.base_url)) is None:
                        raise
                    raise translated from exc
                n_events += 1
                if not event.token.special:
                    held += str(event.token.text)
                if event.details is not None:
                    finish = _finish_value(event.details.finish_reason)
                    state.completion_tokens = int(event.details.generated_tokens)
                    state.finish_reason = _finish_reason(finish)
                    if finish == "stop_sequence":
                        held = _strip_stop(held, stops)
                    if held:
                        state.text_parts.append(held)
                        yield held
                    return
                state.completion_tokens = n_events
                keep = _stop_prefix_len(held, stops)
                ready, held = held[: len(held) - keep], held[len(held) - keep :]
                if ready:
                    state.text_parts.append(ready)
                    yield ready
        # The stream ended without a final event carrying details (not what TGI does).
        if held:
            state.text_parts.append(held)
            yield held

    async def close(self) -> None:
        """Nothing to release: the client opens one HTTP session per request."""


def _stops(params: GenerationParams) -> list[str]:
    return list(params.stop or DEFAULT_STOP)


def _sampling(params: GenerationParams, stops: list[str]) -> dict[str, Any]:
    """GenerationParams as the client's keyword arguments.

    TGI rejects temperature <= 0 and top_p >= 1, and any warper (temperature, top_p) turns
    sampling on: temperature 0 is greedy (`do_sample=False`, neither sent), top_p 1 is unset."""
    greedy = params.temperature <= 0.0
    return {
        "max_new_tokens": params.max_tokens,
        "do_sample": not greedy,
        "temperature": None if greedy else params.temperature,
        "top_p": None if greedy or params.top_p >= 1.0 else params.top_p,
        "stop_sequences": stops,
        "seed": params.seed,
    }


def _finish_value(reason: Any) -> str:
    """The wire value of the client's FinishReason enum ("length", "eos_token", …)."""
    return str(getattr(reason, "value", reason))


def _finish_reason(tgi_reason: str) -> str:
    return "length" if tgi_reason == "length" else "stop"


def _strip_stop(text: str, stops: list[str]) -> str:
    """TGI's text ends with the stop sequence that stopped it: cut it off."""
    for stop in sorted(stops, key=len, reverse=True):
        if stop and text.endswith(stop):
            return text[: -len(stop)]
    # Not at the very end (a detokenisation quirk): cut at the first occurrence.
    cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return text[: min(cuts)] if cuts else text


def _stop_prefix_len(text: str, stops: list[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of a stop sequence."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


def _translate(exc: Exception, base_url: str) -> Exception | None:
    """The harmeval error for what the client or aiohttp raised; None for anything else."""
    from text_generation.errors import BadRequestError
    from text_generation.errors import ValidationError as TgiValidationError

    if isinstance(exc, TgiValidationError):
        message = scrub(str(exc))
        if m := _MAX_TOTAL.search(message):
            limit, given, new = (int(g) for g in m.groups())
            return PromptTooLongError(f"{message}: {given + new - limit} tokens too long")
        if m := _INPUT_LENGTH.search(message):
            limit, given = (int(g) for g in m.groups())
            return PromptTooLongError(f"{message}: {given - limit} tokens too long")
        return RequestRejectedError(message)
    if isinstance(exc, BadRequestError):
        return RequestRejectedError(scrub(str(exc)))
    if isinstance(exc, ValueError):
        # The client checks parameters itself before sending (e.g. at most 4 stop sequences).
        return RequestRejectedError(f"TGI client: {scrub(str(exc))}")
    if isinstance(exc, _unavailable()):
        return EngineUnavailableError(f"TGI at {base_url}: {type(exc).__name__}: {scrub(str(exc))}")
    return None
