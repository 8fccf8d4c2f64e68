"""Adaptive limiter, retries, deadlines, prices and budget for LLM judge calls.

Cool-downs and backoffs run on a fake clock; only the deadline tests sleep for real (tens of ms).
OpenAI errors are the SDK's real exception classes built on real httpx2 responses.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from pathlib import Path

import httpx2
import openai
import pytest

from harmeval_judge.limits import (
    AdaptiveLimiter,
    Budget,
    BudgetExceeded,
    Prices,
    RetryPolicy,
    call_with_retries,
    classify_openai_error,
    load_price_table,
    parse_retry_after,
)

URL = "http://judge.test/v1/chat/completions"


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def _response(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, headers=headers, request=httpx2.Request("POST", URL))


def rate_limited(retry_after: str | None = "2") -> openai.RateLimitError:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return openai.RateLimitError("rate limited", response=_response(429, headers), body=None)


def bad_request() -> openai.BadRequestError:
    return openai.BadRequestError("bad request", response=_response(400), body=None)


def connection_error() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=httpx2.Request("POST", URL))


def limiter(clock: FakeClock | None = None, **kwargs: int) -> AdaptiveLimiter:
    clock = clock or FakeClock()
    return AdaptiveLimiter(clock=clock, sleep=clock.sleep, **kwargs)


# --- AdaptiveLimiter ------------------------------------------------------------------------


async def test_limiter_halves_on_overload() -> None:
    lim = limiter(initial=16)
    for expected in (8, 4, 2, 1):
        await lim.acquire()
        lim.release("overloaded")
        assert lim.limit == expected
    assert lim.in_flight == 0


async def test_limiter_respects_minimum() -> None:
    lim = limiter(initial=16, minimum=3)
    for _ in range(10):
        await lim.acquire()
        lim.release("overloaded")
    assert lim.limit == 3


async def test_limiter_halves_once_per_burst_of_overloads() -> None:
    lim = limiter(initial=16)
    for _ in range(8):
        await lim.acquire()
    # Eight requests sent under the old limit all come back 429: one halving, not eight.
    for _ in range(8):
        lim.release("overloaded")
    assert lim.limit == 8
    # A request sent after the halving and overloaded again halves again.
    await lim.acquire()
    lim.release("overloaded")
    assert lim.limit == 4


async def test_limiter_cools_down_for_retry_after() -> None:
    clock = FakeClock()
    lim = limiter(clock, initial=4)
    await lim.acquire()
    lim.release("overloaded", retry_after_s=2.0)
    assert lim.cooldown_remaining_s == 2.0
    await lim.acquire()
    assert clock.now == pytest.approx(2.0)
    assert clock.sleeps == [pytest.approx(2.0)]
    lim.release("ok")
    # No cool-down left: the next acquisition does not wait.
    await lim.acquire()
    assert clock.sleeps == [pytest.approx(2.0)]
    lim.release("ok")


async def test_limiter_cool_down_is_shared_and_extended_not_shortened() -> None:
    clock = FakeClock()
    lim = limiter(clock, initial=8)
    await lim.acquire()
    await lim.acquire()
    lim.release("overloaded", retry_after_s=5.0)
    lim.release("overloaded", retry_after_s=1.0)  # a shorter Retry-After keeps the later time
    assert lim.cooldown_remaining_s == 5.0
    started = await asyncio.gather(*(_acquire_at(lim, clock) for _ in range(3)))
    assert all(t >= 5.0 for t in started)


async def _acquire_at(lim: AdaptiveLimiter, clock: FakeClock) -> float:
    await lim.acquire()
    lim.release("ok")
    return clock.now


async def test_limiter_caps_absurd_retry_after() -> None:
    clock = FakeClock()
    lim = AdaptiveLimiter(max_cooldown_s=120.0, clock=clock, sleep=clock.sleep)
    await lim.acquire()
    lim.release("overloaded", retry_after_s=86_400.0)
    assert lim.cooldown_remaining_s == 120.0


async def test_limiter_queued_waiter_waits_out_a_cool_down_that_starts_meanwhile() -> None:
    clock = FakeClock()
    lim = limiter(clock, initial=2)
    await lim.acquire()
    await lim.acquire()
    waiter = asyncio.create_task(_acquire_at(lim, clock))
    await asyncio.sleep(0)
    lim.release("overloaded", retry_after_s=3.0)  # limit 2 -> 1, one slot still held
    lim.release("ok")
    assert await waiter >= 3.0
    assert lim.in_flight == 0


async def test_limiter_waiter_handed_a_slot_rechecks_after_a_halving() -> None:
    lim = limiter(initial=4)
    for _ in range(4):
        await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0)
    lim.release("ok")  # hands the slot to the waiter: 4 in flight
    lim.release("overloaded")  # before it runs, the limit halves to 2 with 3 in flight
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiter.done()  # gave the slot back instead of going over the new limit
    assert lim.in_flight == 2
    lim.release("ok")
    await asyncio.wait_for(waiter, timeout=1)
    assert (lim.in_flight, lim.limit) == (2, 2)


async def test_limiter_grows_by_one_after_n_successes() -> None:
    lim = limiter(initial=4, increase_after=5)
    for _ in range(4):
        await lim.acquire()
        lim.release("ok")
    assert lim.limit == 4
    await lim.acquire()
    lim.release("ok")
    assert lim.limit == 5
    # An error breaks the run of successes: five more are needed from there.
    for _ in range(4):
        await lim.acquire()
        lim.release("ok")
    await lim.acquire()
    lim.release("error")
    assert lim.limit == 5
    for _ in range(5):
        await lim.acquire()
        lim.release("ok")
    assert lim.limit == 6


async def test_limiter_never_exceeds_maximum() -> None:
    lim = limiter(initial=3, maximum=4, increase_after=1)
    for _ in range(50):
        await lim.acquire()
        lim.release("ok")
    assert lim.limit == 4


async def test_limiter_rejects_bad_bounds_and_unmatched_release() -> None:
    with pytest.raises(ValueError, match="minimum <= initial <= maximum"):
        AdaptiveLimiter(initial=300, maximum=256)
    with pytest.raises(ValueError, match="minimum <= initial"):
        AdaptiveLimiter(initial=1, minimum=2)
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        AdaptiveLimiter().release("ok")


async def test_limiter_bounds_in_flight_under_load() -> None:
    """200 tasks, random overloads: nobody is admitted beyond the limit, nothing leaks."""
    clock = FakeClock()
    lim = AdaptiveLimiter(initial=8, maximum=16, increase_after=3, clock=clock, sleep=clock.sleep)
    rng = random.Random(7)
    admitted_over_limit: list[tuple[int, int]] = []
    peak = 0

    async def work(i: int) -> None:
        nonlocal peak
        async with lim.slot() as slot:
            if lim.in_flight > lim.limit:
                admitted_over_limit.append((lim.in_flight, lim.limit))
            peak = max(peak, lim.in_flight)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if rng.random() < 0.05:
                slot.overloaded(0.01)
            else:
                slot.ok()

    await asyncio.gather(*(work(i) for i in range(200)))
    assert admitted_over_limit == []
    assert peak <= 16
    assert peak >= 8  # the limit was actually used, not serialised
    assert lim.in_flight == 0
    assert lim.waiting == 0


async def test_limiter_uses_the_whole_limit_when_all_succeed() -> None:
    lim = AdaptiveLimiter(initial=32, maximum=32)
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with lim.slot():
            peak = max(peak, lim.in_flight)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(work() for _ in range(200)))
    assert peak == 32
    assert lim.in_flight == 0


async def test_limiter_cancelled_waiter_does_not_leak_a_slot() -> None:
    lim = AdaptiveLimiter(initial=1, maximum=1)
    await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    lim.release("ok")
    assert lim.in_flight == 0
    await asyncio.wait_for(lim.acquire(), timeout=1)
    lim.release("ok")


async def test_limiter_slot_handed_over_then_cancelled_is_passed_on() -> None:
    lim = AdaptiveLimiter(initial=1, maximum=1)
    await lim.acquire()
    first = asyncio.create_task(lim.acquire())
    second = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0)
    lim.release("ok")  # hands the slot to `first` ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.wait_for(second, timeout=1)
    assert first.cancelled()
    assert lim.in_flight == 1
    lim.release("ok")


async def test_limiter_serves_waiters_in_order() -> None:
    lim = AdaptiveLimiter(initial=1, maximum=1)
    order: list[int] = []

    async def work(i: int) -> None:
        async with lim.slot():
            order.append(i)
            await asyncio.sleep(0)

    await asyncio.gather(*(work(i) for i in range(20)))
    assert order == list(range(20))


async def test_slot_defaults_to_ok_or_error() -> None:
    lim = limiter(initial=2, increase_after=1)
    async with lim.slot():
        pass
    assert lim.limit == 3  # counted as ok
    with pytest.raises(KeyError):
        async with lim.slot():
            raise KeyError("boom")
    assert lim.limit == 3  # counted as error: no change
    assert lim.in_flight == 0


# --- RetryPolicy -----------------------------------------------------------------------------


def test_retry_delay_within_full_jitter_bounds() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=4.0)
    rng = random.Random(1)
    for attempt in range(10):
        bound = min(4.0, 0.5 * 2**attempt)
        draws = [policy.delay(attempt, None, rng) for _ in range(500)]
        assert all(0.0 <= d <= bound for d in draws)
        # Full jitter spreads over the whole range rather than clustering near the bound.
        assert min(draws) < 0.1 * bound
        assert max(draws) > 0.9 * bound


def test_retry_delay_never_less_than_retry_after() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=30.0)
    rng = random.Random(2)
    for attempt in range(6):
        assert all(policy.delay(attempt, 3.0, rng) >= 3.0 for _ in range(200))
    # Honoured even above the cap: the server says when it will take requests again.
    assert policy.delay(0, 45.0, rng) == 45.0


def test_retry_delay_huge_attempt_does_not_overflow() -> None:
    assert 0.0 <= RetryPolicy(cap_s=30.0).delay(5000, None, random.Random(3)) <= 30.0


def test_retry_policy_validates() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


# --- call_with_retries -----------------------------------------------------------------------


class Scripted:
    """An async callable that raises the scripted errors in turn, then returns `value`."""

    def __init__(self, *errors: BaseException, value: str = "verdict") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


async def test_call_retries_overloaded_then_succeeds() -> None:
    clock = FakeClock()
    lim = limiter(clock, initial=16)
    fn = Scripted(rate_limited("1"), rate_limited("1"))
    value, attempts = await call_with_retries(
        fn,
        limiter=lim,
        policy=RetryPolicy(max_attempts=4),
        deadline_s=60,
        classify=classify_openai_error,
        rng=random.Random(0),
        sleep=clock.sleep,
    )
    assert (value, attempts) == ("verdict", 3)
    assert fn.calls == 3
    assert lim.limit == 4  # 16 -> 8 -> 4
    assert lim.in_flight == 0
    # Backoffs honour Retry-After; the limiter's cool-down had already passed by then.
    assert all(s >= 1.0 for s in clock.sleeps)
    assert len(clock.sleeps) == 2


async def test_call_gives_up_after_max_attempts() -> None:
    clock = FakeClock()
    errors = [connection_error() for _ in range(5)]
    fn = Scripted(*errors)
    with pytest.raises(openai.APIConnectionError) as info:
        await call_with_retries(
            fn,
            limiter=limiter(clock),
            policy=RetryPolicy(max_attempts=3),
            deadline_s=60,
            classify=classify_openai_error,
            sleep=clock.sleep,
        )
    assert fn.calls == 3
    assert info.value is errors[2]  # the last error, not the first
    assert len(clock.sleeps) == 2


async def test_call_does_not_retry_fatal_errors() -> None:
    clock = FakeClock()
    lim = limiter(clock, initial=8)
    error = bad_request()
    fn = Scripted(error)
    with pytest.raises(openai.BadRequestError) as info:
        await call_with_retries(
            fn,
            limiter=lim,
            policy=RetryPolicy(),
            deadline_s=60,
            classify=classify_openai_error,
            sleep=clock.sleep,
        )
    assert info.value is error
    assert fn.calls == 1
    assert clock.sleeps == []
    assert lim.limit == 8  # a rejected request says nothing about load
    assert lim.in_flight == 0


async def test_call_stops_when_backoff_would_pass_the_deadline() -> None:
    clock = FakeClock()
    error = rate_limited("10")
    fn = Scripted(error)
    with pytest.raises(openai.RateLimitError) as info:
        await call_with_retries(
            fn,
            limiter=limiter(clock),
            policy=RetryPolicy(max_attempts=5),
            deadline_s=1.0,
            classify=classify_openai_error,
            sleep=clock.sleep,
        )
    assert info.value is error
    assert fn.calls == 1
    assert clock.sleeps == []


async def test_call_deadline_interrupts_a_hanging_attempt() -> None:
    lim = AdaptiveLimiter(initial=4)
    first = connection_error()
    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise first
        await asyncio.sleep(10)
        return "never"

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"deadline of 0\.2s passed after 2 attempt") as info:
        await call_with_retries(
            fn,
            limiter=lim,
            policy=RetryPolicy(max_attempts=4, base_s=0.001),
            deadline_s=0.2,
            classify=classify_openai_error,
        )
    assert time.monotonic() - started < 1.0
    assert info.value.__cause__ is first
    assert lim.in_flight == 0


async def test_call_deadline_does_not_count_time_queued_for_the_first_slot() -> None:
    lim = AdaptiveLimiter(initial=1, maximum=1)

    async def hold() -> None:
        async with lim.slot():
            await asyncio.sleep(0.15)

    async def quick() -> str:
        await asyncio.sleep(0.01)
        return "ok"

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    value, attempts = await call_with_retries(
        quick, limiter=lim, policy=RetryPolicy(), deadline_s=0.1, classify=classify_openai_error
    )
    assert (value, attempts) == ("ok", 1)
    await holder


async def test_call_passes_through_fns_own_timeout_error() -> None:
    error = TimeoutError("the callee's own timeout")
    with pytest.raises(TimeoutError) as info:
        await call_with_retries(
            Scripted(error),
            limiter=AdaptiveLimiter(),
            policy=RetryPolicy(),
            deadline_s=5,
            classify=classify_openai_error,
        )
    assert info.value is error


# --- classify_openai_error -------------------------------------------------------------------


def test_classify_rate_limit_with_retry_after() -> None:
    assert classify_openai_error(rate_limited("2")) == ("retry_overloaded", 2.0)
    assert classify_openai_error(rate_limited(None)) == ("retry_overloaded", None)
    assert classify_openai_error(rate_limited("soon")) == ("retry_overloaded", None)


def test_classify_prefers_retry_after_ms() -> None:
    headers = {"retry-after-ms": "1500", "retry-after": "2"}
    exc = openai.RateLimitError("slow", response=_response(429, headers), body=None)
    assert classify_openai_error(exc) == ("retry_overloaded", 1.5)


def test_classify_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    exc = openai.RateLimitError("slow", response=_response(429, {"retry-after": when}), body=None)
    kind, seconds = classify_openai_error(exc)
    assert kind == "retry_overloaded"
    assert seconds is not None and 25 <= seconds <= 31


def test_classify_server_errors_as_overloaded() -> None:
    ise = openai.InternalServerError(
        "boom", response=_response(503, {"retry-after": "7"}), body=None
    )
    assert classify_openai_error(ise) == ("retry_overloaded", 7.0)
    bad_gateway = openai.APIStatusError("bad gateway", response=_response(502), body=None)
    assert classify_openai_error(bad_gateway) == ("retry_overloaded", None)
    plain_429 = openai.APIStatusError("429", response=_response(429), body=None)
    assert classify_openai_error(plain_429) == ("retry_overloaded", None)


def test_classify_transient_transport_errors() -> None:
    request = httpx2.Request("POST", URL)
    assert classify_openai_error(openai.APITimeoutError(request=request)) == ("retry_error", None)
    assert classify_openai_error(connection_error()) == ("retry_error", None)
    timeout_408 = openai.APIStatusError("timeout", response=_response(408), body=None)
    assert classify_openai_error(timeout_408) == ("retry_error", None)


def test_classify_fatal_errors() -> None:
    assert classify_openai_error(bad_request()) == ("fatal", None)
    auth = openai.AuthenticationError("no key", response=_response(401), body=None)
    assert classify_openai_error(auth) == ("fatal", None)
    unprocessable = openai.UnprocessableEntityError("no", response=_response(422), body=None)
    assert classify_openai_error(unprocessable) == ("fatal", None)
    assert classify_openai_error(ValueError("not an API error")) == ("fatal", None)


def test_parse_retry_after_edge_cases() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


# --- prices, price table, budget ------------------------------------------------------------


def test_prices_cost() -> None:
    prices = Prices(prompt_per_1k=0.0025, completion_per_1k=0.01)
    assert prices.cost(1000, 0) == pytest.approx(0.0025)
    assert prices.cost(2000, 500) == pytest.approx(0.005 + 0.005)
    assert prices.cost(0, 0) == 0.0
    assert Prices().cost(10_000, 10_000) == 0.0
    with pytest.raises(ValueError, match="prompt_per_1k"):
        Prices(prompt_per_1k=-1.0)


TABLE = {
    "gpt-4o": {"prompt_per_1k": 0.0025, "completion_per_1k": 0.01},
    "local": {"prompt_per_1k": 0, "completion_per_1k": 0},
}


def test_load_price_table_from_json_string() -> None:
    table = load_price_table(json.dumps(TABLE))
    assert table == {
        "gpt-4o": Prices(prompt_per_1k=0.0025, completion_per_1k=0.01),
        "local": Prices(prompt_per_1k=0.0, completion_per_1k=0.0),
    }


def test_load_price_table_from_files(tmp_path: Path) -> None:
    as_json = tmp_path / "prices.json"
    as_json.write_text(json.dumps(TABLE))
    as_yaml = tmp_path / "prices.yaml"
    as_yaml.write_text(
        "gpt-4o:\n  prompt_per_1k: 0.0025\n  completion_per_1k: 0.01\n"
        "local: {prompt_per_1k: 0, completion_per_1k: 0}\n"
    )
    expected = {"gpt-4o": Prices(prompt_per_1k=0.0025, completion_per_1k=0.01), "local": Prices()}
    assert load_price_table(str(as_json)) == expected
    assert load_price_table(str(as_yaml)) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('{"gpt-4o": ', "invalid JSON"),
        ("[1, 2]", "not a JSON object and no such file"),
        ("/nonexistent/prices.json", "no such file"),
        ('{"gpt-4o": 0.01}', r"'gpt-4o': expected a mapping, got float"),
        (
            '{"gpt-4o": {"prompt_per_1k": 0.1, "completion_per_1K": 0.2}}',
            r"'gpt-4o': unknown key 'completion_per_1K'",
        ),
        ('{"gpt-4o": {"prompt_per_1k": 0.1}}', r"'gpt-4o': missing 'completion_per_1k'"),
        (
            '{"m": {"prompt_per_1k": -0.1, "completion_per_1k": 0}}',
            r"'m'\.prompt_per_1k must be a number >= 0",
        ),
        (
            '{"m": {"prompt_per_1k": "0.1", "completion_per_1k": 0}}',
            r"'m'\.prompt_per_1k must be a number >= 0 .* got '0.1'",
        ),
        (
            '{"m": {"prompt_per_1k": 0, "completion_per_1k": true}}',
            r"'m'\.completion_per_1k must be a number",
        ),
    ],
)
def test_load_price_table_errors_name_the_key(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_price_table(spec)


def test_load_price_table_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yml"
    bad.write_text("gpt-4o: [unclosed\n")
    with pytest.raises(ValueError, match="invalid YAML"):
        load_price_table(str(bad))
    listed = tmp_path / "list.yaml"
    listed.write_text("- gpt-4o\n")
    with pytest.raises(ValueError, match="expected a mapping of model -> prices, got list"):
        load_price_table(str(listed))


def test_budget_unlimited() -> None:
    budget = Budget(None)
    budget.charge(1e6)
    assert budget.spent == 1e6
    assert budget.remaining is None
    assert not budget.exhausted
    budget.check()


def test_budget_exhaustion() -> None:
    budget = Budget(1.0)
    budget.charge(0.6)
    assert budget.remaining == pytest.approx(0.4)
    assert not budget.exhausted
    budget.check()
    budget.charge(0.5)
    assert budget.exhausted
    assert budget.remaining == 0.0
    with pytest.raises(BudgetExceeded, match=r"spent \$1\.1000 of \$1\.0000"):
        budget.check()
    with pytest.raises(ValueError):
        budget.charge(-0.1)
    with pytest.raises(ValueError):
        Budget(-1.0)


async def test_budget_stops_a_run_cleanly() -> None:
    """Items are checked against the budget before each call; the run stops at the limit."""
    prices = Prices(prompt_per_1k=1.0, completion_per_1k=1.0)
    budget = Budget(0.05)
    lim = AdaptiveLimiter()
    done: list[int] = []
    for i in range(100):
        try:
            budget.check()
        except BudgetExceeded:
            break
        await call_with_retries(
            Scripted(value=str(i)),
            limiter=lim,
            policy=RetryPolicy(),
            deadline_s=5,
            classify=classify_openai_error,
        )
        budget.charge(prices.cost(8, 2))
        done.append(i)
    assert len(done) == 5  # 0.01 USD each
    assert budget.exhausted
