"""One client per OpenAI-compatible endpoint: adaptive concurrency, retries with jittered
backoff, a deadline per request, token accounting, prices and the shared budget.

Two transports post the same chat-completions JSON and read the same reply:

- ``openai-sdk`` (default): the official SDK, so every provider it supports behaves as its
  users expect. Its retries are off (max_retries=0): every attempt goes through the limiter,
  is counted, and backs off honouring Retry-After.
- ``aiohttp``: a plain HTTP POST, for high-throughput endpoints (a self-hosted vLLM judge at
  hundreds of calls a second). It costs about a third of the SDK's CPU per call
  (bench/judge_throughput.py), which decides throughput once hundreds of calls are in flight
  in one process. It raises the SDK's own error types, so retries, backoff and the gRPC status
  a caller sees do not depend on the transport.

Structured output (:class:`OutputSchema`): a judge may send the JSON Schema its reply must
follow, for grammar-constrained decoding. Servers take it in one of two shapes of
``response_format``: OpenAI's ``{"type": "json_schema", "json_schema": {"name", "strict",
"schema"}}`` (OpenAI, vLLM, llama.cpp's ``llama-server``, SGLang) or ``{"type": "json_object",
"schema": ...}`` (llama-cpp-python's ``python -m llama_cpp.server``, which refuses the first
with a validation error naming ``response_format``). Mode ``auto`` sends OpenAI's shape and,
when the server refuses it naming ``response_format``, sends the request again at once in the
other shape; the endpoint then keeps using the shape that worked.

Neither follows redirects: a 3xx is an error of that call (the key goes to the declared URL
only). What a backend answers reaches an error message or a verdict only redacted (no
registered key in it, :mod:`harmeval.secrets`) and, for errors, cut to a bounded length.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import aiohttp
import httpx2
import openai
from prometheus_client import Counter, Gauge

from harmeval.secrets import redact, scrub
from harmeval_judge.limits import (
    AdaptiveLimiter,
    Budget,
    Prices,
    RetryPolicy,
    call_with_retries,
    classify_openai_error,
)

TRANSPORTS = ("openai-sdk", "aiohttp")

# How a judge asks for structured output: not at all, in one of the two request shapes, or in
# whichever the server takes (see the module docstring).
StructuredOutput = Literal["none", "json_schema", "json_object", "auto"]
STRUCTURED_OUTPUTS: tuple[str, ...] = get_args(StructuredOutput)

LLM_CALLS = Counter(
    "harmeval_judge_llm_calls",
    "Attempts to call an LLM judge's API, retries included, by outcome (HTTP status, timeout "
    "or connection_error).",
    ["judge", "code"],
)
LLM_TOKENS = Counter(
    "harmeval_judge_llm_tokens",
    "Tokens an LLM judge's API reported using (its `usage` field).",
    ["judge", "kind"],
)
LLM_COST = Counter(
    "harmeval_judge_llm_cost_usd",
    "What an LLM judge's calls cost, from the configured price table.",
    ["judge"],
)
BUDGET_REMAINING = Gauge(
    "harmeval_judge_budget_remaining_ratio",
    "Share of the judge service's spend budget left (1 without a budget).",
    ["judge"],
)


@dataclass(frozen=True, kw_only=True)
class OutputSchema:
    """The JSON Schema a judge's reply must follow, and how to ask for it."""

    name: str  # OpenAI's json_schema.name: letters, digits, "_" and "-"
    schema: dict[str, Any]
    mode: StructuredOutput = "json_schema"

    def response_format(self, shape: str) -> dict[str, Any]:
        """The request's ``response_format`` in one shape (``json_schema`` or ``json_object``);
        a deep copy, so a client that edits it cannot change the judge's schema."""
        schema = copy.deepcopy(self.schema)
        if shape == "json_object":
            return {"type": "json_object", "schema": schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "strict": True, "schema": schema},
        }


def refuses_response_format(exc: BaseException) -> bool:
    """Whether an error is a server refusing the request's ``response_format``: a 400 or 422
    naming the field, or llama-cpp-python's 500 for a request its own schema does not allow."""
    return (
        isinstance(exc, openai.APIStatusError)
        and exc.status_code in (400, 422, 500)
        and "response_format" in str(exc)
    )


class JudgeBackendError(RuntimeError):
    """The judge's backend could not be reached after retries (or before the deadline)."""


class JudgeRequestRejected(JudgeBackendError):
    """The backend refused the request in a way a retry cannot fix (400, 401, 403, 404, 422:
    e.g. a prompt over the judge model's context, a wrong key or model name)."""


@dataclass(frozen=True, kw_only=True)
class ChatResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    attempts: int
    # Probability of each candidate first token, when logprobs were asked for.
    first_token_probs: dict[str, float]


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error"
    if isinstance(exc, openai.APIStatusError):
        return str(exc.status_code)
    return "error"


class ChatTransport(Protocol):
    """Posts one chat-completions request; returns the reply's body (JSON, undecoded).

    Failures are the SDK's exceptions: `openai.APIStatusError` (and its per-status
    subclasses) for an HTTP error, `openai.APITimeoutError`, `openai.APIConnectionError`.
    """

    async def post(self, body: dict[str, Any]) -> bytes: ...

    async def close(self) -> None: ...


class SdkTransport:
    def __init__(self, base_url: str, api_key: str, timeout_s: float, connections: int) -> None:
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=0,
            # The SDK's aiohttp transport costs a third to two thirds less CPU per request than
            # its default one (bench/judge_throughput.py), and the pool is raised to the limit:
            # the default keeps only 100 connections alive. The SDK's clients follow redirects
            # by default: this one does not.
            http_client=openai.DefaultAioHttpClient(
                limits=httpx2.Limits(
                    max_connections=connections, max_keepalive_connections=connections
                ),
                timeout=timeout_s,
                follow_redirects=False,
            ),
        )

    async def post(self, body: dict[str, Any]) -> bytes:
        # The SDK's typed `create()` deep-copies and transforms every request through its type
        # hints, and building its response models costs as much again: a third of the CPU per
        # call under load. The request is already plain JSON, so it is posted as is through the
        # SDK's documented low-level `post`, and the reply is read as JSON like the other path.
        response = await self._client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        return response.content

    async def close(self) -> None:
        await self._client.close()


_STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


def status_error(status: int, headers: Any, content: bytes, url: str) -> openai.APIStatusError:
    """The exception the SDK raises for this HTTP error (same class, message and body)."""
    response = httpx2.Response(
        status, headers=headers, content=content, request=httpx2.Request("POST", url)
    )
    try:
        body: Any = json.loads(content)
    except (ValueError, RecursionError):
        body = content.decode(errors="replace").strip()
    error = body.get("error", body) if isinstance(body, dict) else body
    message = f"Error code: {status}"
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        message += f" - {error['message']}"
    cls = _STATUS_ERRORS.get(status, openai.InternalServerError if status >= 500 else None)
    return (cls or openai.APIStatusError)(message, response=response, body=error)


class AiohttpTransport:
    def __init__(self, base_url: str, api_key: str, timeout_s: float, connections: int) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._connections = connections
        # Opened on first use: a session belongs to the event loop that runs the requests.
        self._session: aiohttp.ClientSession | None = None

    async def post(self, body: dict[str, Any]) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections), timeout=self._timeout
            )
        try:
            async with self._session.post(
                self._url,
                data=json.dumps(body).encode(),
                headers=self._headers,
                allow_redirects=False,
            ) as response:
                content = await response.read()
        except TimeoutError as exc:
            raise openai.APITimeoutError(httpx2.Request("POST", self._url)) from exc
        except aiohttp.ClientError as exc:
            raise openai.APIConnectionError(
                message=f"Connection error: {exc}", request=httpx2.Request("POST", self._url)
            ) from exc
        # A redirect is not followed: an error, as the SDK's client raises it.
        if response.status >= 300:
            raise status_error(response.status, response.headers.items(), content, self._url)
        return content

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def read_completion(content: bytes) -> tuple[str, int, int, dict[str, float]]:
    """(text, prompt tokens, completion tokens, first-token probabilities) of a reply body.

    Read leniently, as the SDK does: servers differ in what they leave out. A reply without a
    choice has no text, which the protocol parsers then call unscorable.
    """
    try:
        data = json.loads(content)
    except RecursionError as exc:  # a hostile backend's reply: unreadable, like bad JSON
        raise ValueError("the reply is nested too deeply") from exc
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    usage = data.get("usage") or {}
    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    text = (choice.get("message") or {}).get("content") or ""
    probs: dict[str, float] = {}
    first = ((choice.get("logprobs") or {}).get("content") or [{}])[0]
    for alt in first.get("top_logprobs") or []:
        token = str(alt["token"]).strip().lower()
        probs[token] = probs.get(token, 0.0) + math.exp(float(alt["logprob"]))
    return (
        str(text),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        probs,
    )


class LlmEndpoint:
    """A chat-completions endpoint shared by every judge that uses it (one limiter each): a
    declared backend (harmeval_judge.backends), named `backend` in messages."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        backend: str = "default",
        timeout_s: float,
        deadline_s: float,
        max_attempts: int,
        budget: Budget,
        max_concurrency: int = 256,
        transport: str = "openai-sdk",
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {list(TRANSPORTS)}, got {transport!r}")
        self.base_url = base_url
        self.backend = backend
        self.transport = transport
        self.budget = budget
        self.deadline_s = deadline_s
        # Start at the configured ceiling and let 429s halve it: a cautious start would take
        # thousands of requests to grow to a large provider limit.
        self.limiter = AdaptiveLimiter(initial=max_concurrency, maximum=max_concurrency)
        self.policy = RetryPolicy(max_attempts=max_attempts)
        # The response_format shape this server took in mode "auto"; None until one did.
        self.schema_shape: str | None = None
        make = SdkTransport if transport == "openai-sdk" else AiohttpTransport
        self._transport: ChatTransport = make(base_url, api_key, timeout_s, max_concurrency)

    async def chat(
        self,
        judge: str,
        model: str,
        messages: list[dict[str, str]],
        *,
        prices: Prices,
        max_tokens: int,
        response_format: dict[str, Any] | None = None,
        output_schema: OutputSchema | None = None,
        logprobs: bool = False,
    ) -> ChatResult:
        """One chat completion. `output_schema` asks for structured output in its mode's
        request shape (and replaces `response_format`, which is sent as given otherwise)."""
        self.budget.check()
        request: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": max_tokens,
        }
        auto = output_schema is not None and output_schema.mode == "auto"
        if output_schema is not None and output_schema.mode != "none":
            shape = (self.schema_shape or "json_schema") if auto else output_schema.mode
            response_format = output_schema.response_format(shape)
        if response_format is not None:
            request["response_format"] = response_format
        if logprobs:
            request["logprobs"] = True
            request["top_logprobs"] = 5

        async def post() -> bytes:
            try:
                content = await self._transport.post(request)
            except Exception as exc:
                LLM_CALLS.labels(judge, _outcome(exc)).inc()
                raise
            LLM_CALLS.labels(judge, "200").inc()
            return content

        async def attempt() -> bytes:
            # Checked again once a slot is held: calls queued behind the limiter when the
            # budget ran out must not all go out and overspend it.
            self.budget.check()
            if not auto:
                return await post()
            assert output_schema is not None  # auto implies a schema; narrows the type
            # Another call may have found the server's shape since this one was built.
            learned = self.schema_shape
            request["response_format"] = output_schema.response_format(learned or "json_schema")
            if learned is not None:
                return await post()
            try:
                content = await post()
            except openai.APIStatusError as exc:
                if not refuses_response_format(exc):
                    raise
                # A server taking only the other shape (llama-cpp-python's): asked again at
                # once, not after a backoff meant for an overloaded one.
                request["response_format"] = output_schema.response_format("json_object")
                content = await post()
                self.schema_shape = "json_object"
                return content
            self.schema_shape = "json_schema"
            return content

        try:
            content, attempts = await call_with_retries(
                attempt,
                limiter=self.limiter,
                policy=self.policy,
                deadline_s=self.deadline_s,
                classify=classify_openai_error,
            )
        except (openai.APIStatusError, openai.APIConnectionError, TimeoutError) as exc:
            # Only the server's own refusal is final; a deadline or a dropped connection is not.
            if isinstance(exc, openai.APIStatusError) and classify_openai_error(exc)[0] == "fatal":
                raise JudgeRequestRejected(
                    f"{judge}: backend {self.backend!r} refused the request: {scrub(str(exc))}"
                ) from exc
            raise JudgeBackendError(
                f"{judge}: backend {self.backend!r} failed: {scrub(str(exc))}"
            ) from exc
        try:
            text, prompt_tokens, completion_tokens, probs = read_completion(content)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise JudgeBackendError(
                f"{judge}: backend {self.backend!r} answered with something that is not a chat "
                f"completion ({scrub(str(exc))})"
            ) from exc
        # A backend echoing the request's key in its answer must not store it as a verdict.
        text = redact(text)
        cost = prices.cost(prompt_tokens, completion_tokens)
        LLM_TOKENS.labels(judge, "prompt").inc(prompt_tokens)
        LLM_TOKENS.labels(judge, "completion").inc(completion_tokens)
        LLM_COST.labels(judge).inc(cost)
        self.budget.charge(cost)
        remaining = self.budget.remaining
        BUDGET_REMAINING.labels(judge).set(
            1.0
            if remaining is None or self.budget.limit_usd is None
            else max(0.0, remaining / self.budget.limit_usd)
        )
        return ChatResult(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            attempts=attempts,
            first_token_probs=probs,
        )

    async def close(self) -> None:
        await self._transport.close()
