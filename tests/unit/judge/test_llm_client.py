"""LlmEndpoint over both transports against the OpenAI wire-format fake: what is sent, what is
read back, and how every kind of failure surfaces (the same way whichever transport)."""

from __future__ import annotations

import asyncio
import math
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from harmeval.secrets import MAX_ERROR_CHARS, REDACTED, register_secret
from harmeval_judge.limits import Budget, BudgetExceeded, Prices
from harmeval_judge.llm_client import (
    TRANSPORTS,
    JudgeBackendError,
    JudgeRequestRejected,
    LlmEndpoint,
)
from tests.fakes.canary import canary, redirecting
from tests.fakes.openai_server import FakeOpenAI, Script, fake_openai

MESSAGES = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Judge."}]
PRICES = Prices(prompt_per_1k=1.0, completion_per_1k=2.0)


class Scripted:
    """The fake's script; tests replace `reply`."""

    def __init__(self) -> None:
        self.reply: Script = lambda messages: (200, "Verdict: harmful")

    def __call__(self, messages: list[dict[str, Any]]) -> tuple[Any, ...]:
        return self.reply(messages)


@pytest.fixture
def server() -> Iterator[tuple[Scripted, FakeOpenAI]]:
    scripted = Scripted()
    with fake_openai(scripted) as fake:
        yield scripted, fake


def make_endpoint(base_url: str, transport: str, **overrides: Any) -> LlmEndpoint:
    options: dict[str, Any] = {
        "timeout_s": 5.0,
        "deadline_s": 20.0,
        "max_attempts": 3,
        "budget": Budget(None),
        "max_concurrency": 8,
        "transport": transport,
    }
    options.update(overrides)
    return LlmEndpoint(base_url, "sk-test-key", **options)


@pytest.fixture(params=TRANSPORTS)
async def endpoint(
    request: pytest.FixtureRequest, server: tuple[Scripted, FakeOpenAI]
) -> AsyncIterator[LlmEndpoint]:
    ep = make_endpoint(server[1].base_url, request.param)
    yield ep
    await ep.close()


async def chat(ep: LlmEndpoint, **kwargs: Any) -> Any:
    return await ep.chat(
        "test-judge", "judge-model", MESSAGES, prices=PRICES, max_tokens=16, **kwargs
    )


async def test_sends_the_request_and_the_key_and_reads_text_tokens_cost(
    endpoint: LlmEndpoint, server: tuple[Scripted, FakeOpenAI]
) -> None:
    _, fake = server
    result = await chat(endpoint)
    assert result.text == "Verdict: harmful"
    assert (result.prompt_tokens, result.completion_tokens, result.attempts) == (100, 10, 1)
    assert result.cost_usd == pytest.approx(0.1 + 0.02)
    assert result.first_token_probs == {}
    assert fake.requests == [
        {"model": "judge-model", "messages": MESSAGES, "temperature": 0.0, "max_tokens": 16}
    ]
    assert fake.headers[0]["authorization"] == "Bearer sk-test-key"
    assert fake.headers[0]["content-type"] == "application/json"


async def test_structured_output_and_first_token_probabilities(
    endpoint: LlmEndpoint, server: tuple[Scripted, FakeOpenAI]
) -> None:
    _, fake = server
    fake.first_token_logprobs = {"unsafe": math.log(0.7), " Unsafe": math.log(0.1), "safe": -3.0}
    schema = {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object"}}}
    result = await chat(endpoint, response_format=schema, logprobs=True)
    assert fake.requests[0]["response_format"] == schema
    assert fake.requests[0]["logprobs"] is True and fake.requests[0]["top_logprobs"] == 5
    # Tokens are compared stripped and lower-cased, so " Unsafe" adds to "unsafe".
    assert result.first_token_probs == pytest.approx({"unsafe": 0.8, "safe": math.exp(-3.0)})


async def test_a_429_is_retried_after_its_retry_after(
    endpoint: LlmEndpoint, server: tuple[Scripted, FakeOpenAI]
) -> None:
    scripted, fake = server
    replies = iter([(429, "slow down", {"retry-after": "0.3"}), (200, "Verdict: not harmful")])
    scripted.reply = lambda messages: next(replies)
    started = time.monotonic()
    result = await chat(endpoint)
    assert time.monotonic() - started >= 0.3
    assert result.text == "Verdict: not harmful" and result.attempts == 2 and fake.calls == 2


async def test_server_errors_use_up_the_retries_then_fail_as_unavailable(
    endpoint: LlmEndpoint, server: tuple[Scripted, FakeOpenAI]
) -> None:
    scripted, fake = server
    scripted.reply = lambda messages: (503, "overloaded", {})
    with pytest.raises(JudgeBackendError, match="503") as info:
        await chat(endpoint)
    assert "overloaded" in str(info.value)
    assert fake.calls == 3


async def test_a_rate_limit_storm_is_ridden_through_while_the_backend_says_when(
    endpoint: LlmEndpoint, server: tuple[Scripted, FakeOpenAI]
) -> None:
    """Retry-After on every answer for longer than the retries would last: the request keeps
    going (within its deadline) and succeeds once the storm is over."""
    scripted, fake = server
    storm_ends = time.monotonic() + 1.5

    def reply(messages: Any) -> tuple[int, str, dict[str, str]]:
        if time.monotonic() < storm_ends:
            return 429, "rate limited", {"retry-after": "0.2"}
        return 200, "Verdict: not harmful", {}

    scripted.reply = reply
    result = await chat(endpoint)
    assert result.text == "Verdict: not harmful"
    assert result.attempts > 3 and fake.calls == result.attempts


async def test_a_bad_request_is_refused_without_retries(
    endpoint: LlmEndpoint, server: tuple[Scripted, FakeOpenAI]
) -> None:
    scripted, fake = server
    scripted.reply = lambda messages: (400, "max_tokens is too large")
    with pytest.raises(JudgeRequestRejected, match="max_tokens is too large") as info:
        await chat(endpoint)
    assert isinstance(info.value.__cause__, openai.BadRequestError)
    assert fake.calls == 1


async def test_a_spent_budget_stops_calls_queued_for_a_slot(
    server: tuple[Scripted, FakeOpenAI],
) -> None:
    """Calls waiting for the limiter when the budget runs out must not all go out."""
    _, fake = server
    budget = Budget(0.5)  # each call costs 0.1 + 0.02: the budget allows 5 calls
    ep = make_endpoint(fake.base_url, "aiohttp", budget=budget, max_concurrency=2)
    try:
        results = await asyncio.gather(*(chat(ep) for _ in range(20)), return_exceptions=True)
    finally:
        await ep.close()
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(refused) + fake.calls == 20
    # At most the calls in flight when the limit was crossed (2) go over it.
    assert fake.calls <= 5 + 2 and budget.spent <= 0.5 + 2 * 0.12


async def test_a_reply_that_is_not_a_chat_completion_fails_clearly(
    endpoint: LlmEndpoint, server: tuple[Scripted, FakeOpenAI]
) -> None:
    scripted, _ = server
    scripted.reply = lambda messages: (200, b"<html>proxy error page</html>")
    with pytest.raises(JudgeBackendError, match="not a chat completion"):
        await chat(endpoint)


async def test_a_reply_without_choices_has_no_text(
    endpoint: LlmEndpoint, server: tuple[Scripted, FakeOpenAI]
) -> None:
    scripted, _ = server
    scripted.reply = lambda messages: (200, b'{"choices": [], "usage": null}')
    result = await chat(endpoint)
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("", 0, 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_timeouts_are_retried_then_fail(
    transport: str, server: tuple[Scripted, FakeOpenAI]
) -> None:
    scripted, fake = server

    def slow(messages: list[dict[str, Any]]) -> tuple[int, str]:
        time.sleep(0.6)
        return 200, "too late"

    scripted.reply = slow
    ep = make_endpoint(fake.base_url, transport, timeout_s=0.2, max_attempts=2)
    try:
        with pytest.raises(JudgeBackendError, match="timed out"):
            await chat(ep)
    finally:
        await ep.close()
    assert fake.calls == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_unreachable_endpoint_fails_as_unavailable(transport: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the call: nothing listens there
    ep = make_endpoint(f"http://127.0.0.1:{port}/v1", transport, max_attempts=2)
    try:
        # (The SDK's aiohttp transport reports a refused connection as a timeout.)
        with pytest.raises(JudgeBackendError, match="backend 'default' failed"):
            await chat(ep)
    finally:
        await ep.close()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 429, 500, 503, 418])
async def test_both_transports_raise_the_sdks_exception_for_each_status(
    status: int, server: tuple[Scripted, FakeOpenAI]
) -> None:
    """The aiohttp transport's errors are checked against what the SDK itself raises."""
    scripted, fake = server
    scripted.reply = lambda messages: (status, f"status {status} happened")
    raised: list[BaseException] = []
    for transport in TRANSPORTS:
        ep = make_endpoint(fake.base_url, transport, max_attempts=1)
        try:
            with pytest.raises((openai.APIStatusError, JudgeBackendError)) as info:
                await chat(ep)
        finally:
            await ep.close()
        error = info.value
        raised.append(error.__cause__ if isinstance(error, JudgeBackendError) else error)
    sdk, direct = raised
    assert type(direct) is type(sdk)
    assert str(direct) == str(sdk)
    assert isinstance(sdk, openai.APIStatusError) and isinstance(direct, openai.APIStatusError)
    assert direct.status_code == sdk.status_code == status
    assert direct.body == sdk.body


def test_an_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="transport must be one of"):
        make_endpoint("http://127.0.0.1:1/v1", "carrier-pigeon")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_passed_deadline_is_unavailable_not_a_refusal(
    transport: str, server: tuple[Scripted, FakeOpenAI]
) -> None:
    scripted, fake = server

    def slow(messages: list[dict[str, Any]]) -> tuple[int, str]:
        time.sleep(0.6)
        return 200, "too late"

    scripted.reply = slow
    ep = make_endpoint(fake.base_url, transport, deadline_s=0.3)
    try:
        with pytest.raises(JudgeBackendError, match="deadline") as info:
            await chat(ep)
    finally:
        await ep.close()
    assert not isinstance(info.value, JudgeRequestRejected)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_refused_not_followed(transport: str, status: int) -> None:
    """The key goes to the declared URL only: a backend redirecting elsewhere fails the call
    (as a refusal, not retried), and the place it pointed at receives nothing."""
    with canary() as bird, redirecting(f"{bird.url}/v1", status) as hop:
        ep = make_endpoint(f"{hop.url}/v1", transport)
        try:
            with pytest.raises(JudgeRequestRejected, match=f"backend 'default' refused.*{status}"):
                await chat(ep)
        finally:
            await ep.close()
        assert hop.hits == 1
        assert bird.hits == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_key_echoed_by_the_backend_is_redacted_and_the_error_cut(
    transport: str, server: tuple[Scripted, FakeOpenAI]
) -> None:
    scripted, fake = server
    key = f"sk-sentinel-{uuid.uuid4().hex}"
    register_secret(key)

    def echo(status: int) -> Script:
        return lambda messages: (status, f"you sent {fake.headers[-1]['authorization']} " * 50)

    ep = LlmEndpoint(
        fake.base_url,
        key,
        timeout_s=5.0,
        deadline_s=20.0,
        max_attempts=1,
        budget=Budget(None),
        transport=transport,
    )
    try:
        for status, error in ((500, JudgeBackendError), (401, JudgeRequestRejected)):
            scripted.reply = echo(status)
            with pytest.raises(error) as info:
                await chat(ep)
            message = str(info.value)
            assert key not in message and REDACTED in message
            assert len(message) < MAX_ERROR_CHARS + 200
            assert "more characters cut" in message
        # A 200 whose text echoes the key: the text a verdict keeps shows no key.
        scripted.reply = echo(200)
        result = await chat(ep)
        assert key not in result.text and REDACTED in result.text
    finally:
        await ep.close()
    assert all(h["authorization"] == f"Bearer {key}" for h in fake.headers)
