"""Rate limits, retries, deadlines, prices and budgets for calls to LLM judge APIs.

One `AdaptiveLimiter` per backend bounds how many requests are in flight and adapts that bound
(AIMD: halve on 429/5xx, +1 after a run of successes), honouring Retry-After as a cool-down
shared by every caller. `call_with_retries` runs one request under the limiter with jittered
exponential backoff and a per-request deadline. `Prices`, `load_price_table` and `Budget` turn
the token counts an API reports into dollars and stop a run once its budget is spent.

The OpenAI client used with these must be built with `max_retries=0`: the SDK's own retries
would hide 429s from the limiter and multiply attempts past `RetryPolicy.max_attempts`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import openai

T = TypeVar("T")

Outcome = Literal["ok", "overloaded", "error"]
RetryKind = Literal["retry_overloaded", "retry_error", "fatal"]
Classification = tuple[RetryKind, float | None]

# The OpenAI SDK refuses to wait longer than this for a Retry-After; a longer value usually
# means "come back later", and a cool-down that long would stall every caller of the backend.
MAX_COOLDOWN_S = 120.0


class Slot:
    """One acquired unit of a limiter's concurrency; say how the request went, then leave.

    Used through `AdaptiveLimiter.slot()`. Calling none of `ok`/`overloaded`/`error` counts as
    "ok" when the block exits normally and as "error" when it raises.
    """

    __slots__ = ("_outcome", "_retry_after_s")

    def __init__(self) -> None:
        self._outcome: Outcome | None = None
        self._retry_after_s: float | None = None

    def ok(self) -> None:
        self._outcome = "ok"

    def overloaded(self, retry_after_s: float | None = None) -> None:
        self._outcome = "overloaded"
        self._retry_after_s = retry_after_s

    def error(self) -> None:
        self._outcome = "error"


class AdaptiveLimiter:
    """AIMD concurrency limit per backend.

    `limit` starts at `initial`. An "overloaded" release halves it (not below `minimum`) and,
    given a Retry-After, makes every new acquisition wait until that time has passed; every
    `increase_after` consecutive "ok" releases add one (not above `maximum`). "error" (timeouts,
    connection failures, rejected requests) changes nothing but the run of successes.

    Like TCP halving once per window, only one halving counts per burst: the requests already
    in flight when the limit was halved were sent under the old limit, so their 429s say
    nothing about the new one (otherwise one burst of k overloads would divide the limit by
    2**k). They still extend the cool-down.

    Nobody is admitted during a cool-down or while `in_flight >= limit`; waiters are served
    first come, first served. `clock` and `sleep` are injectable so tests can run cool-downs
    without waiting.
    """

    def __init__(
        self,
        *,
        initial: int = 16,
        minimum: int = 1,
        maximum: int = 256,
        increase_after: int = 20,
        max_cooldown_s: float = MAX_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(
                f"need 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}"
            )
        if increase_after < 1:
            raise ValueError(f"increase_after must be >= 1, got {increase_after}")
        self.minimum = minimum
        self.maximum = maximum
        self.increase_after = increase_after
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._sleep = sleep
        self._limit = initial
        self._in_flight = 0
        self._ok_streak = 0
        self._cooldown_until = -math.inf
        # Releases still owed by requests that were in flight at the last halving.
        self._unreleased_at_halving = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.Task[None] | None = None

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    @property
    def cooldown_remaining_s(self) -> float:
        return max(0.0, self._cooldown_until - self._clock())

    async def acquire(self) -> None:
        """Wait for a free slot outside any cool-down; pair with `release`."""
        if not self._waiters and self._admissible():
            self._in_flight += 1
            return
        loop = asyncio.get_running_loop()
        at_front = False
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            if at_front:
                self._waiters.appendleft(fut)
            else:
                self._waiters.append(fut)
            self._wake()  # starts the cool-down timer if one is due
            try:
                await fut
            except BaseException:
                if fut.done() and not fut.cancelled():
                    # The slot was handed over just as we were cancelled: pass it on.
                    self._in_flight -= 1
                    self._wake()
                else:
                    fut.cancel()
                raise
            # Between the hand-over and this task running, another release may have halved
            # the limit or started a cool-down: then give the slot back and keep our place.
            if self._in_flight <= self._limit and not self._cooling():
                return
            self._in_flight -= 1
            at_front = True

    def release(self, outcome: Outcome, retry_after_s: float | None = None) -> None:
        """Give back a slot taken by `acquire`, saying how the request went."""
        if self._in_flight <= 0:
            raise RuntimeError("release() without a matching acquire()")
        self._in_flight -= 1
        stale = self._unreleased_at_halving > 0
        if stale:
            self._unreleased_at_halving -= 1
        if outcome == "ok":
            self._ok_streak += 1
            if self._ok_streak >= self.increase_after:
                self._ok_streak = 0
                self._limit = min(self.maximum, self._limit + 1)
        else:
            self._ok_streak = 0
            if outcome == "overloaded":
                if not stale:
                    self._limit = max(self.minimum, self._limit // 2)
                    self._unreleased_at_halving = self._in_flight
                if retry_after_s is not None and retry_after_s > 0:
                    until = self._clock() + min(retry_after_s, self.max_cooldown_s)
                    self._cooldown_until = max(self._cooldown_until, until)
        self._wake()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """`async with limiter.slot() as s: ...; s.overloaded(2.0)` — released on exit."""
        await self.acquire()
        handle = Slot()
        try:
            yield handle
        except BaseException:
            self.release(handle._outcome or "error", handle._retry_after_s)
            raise
        self.release(handle._outcome or "ok", handle._retry_after_s)

    def _cooling(self) -> bool:
        return self._cooldown_until > self._clock()

    def _admissible(self) -> bool:
        return self._in_flight < self._limit and not self._cooling()

    def _wake(self) -> None:
        if self._cooling():
            # Nobody is admitted until the cool-down ends; one timer wakes the queue then.
            if self._waiters and (self._timer is None or self._timer.done()):
                self._timer = asyncio.get_running_loop().create_task(self._end_cooldown())
            return
        # Hand slots straight to waiters (counted as theirs now) so a newcomer arriving
        # between the wake-up and the waiter running cannot take the slot first.
        while self._waiters and self._in_flight < self._limit:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                self._in_flight += 1

    async def _end_cooldown(self) -> None:
        # A loop, not one sleep: another overload may push the cool-down further meanwhile.
        while (wait := self._cooldown_until - self._clock()) > 0:
            await self._sleep(wait)
        self._wake()


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
    Jitter"): spreading retries uniformly avoids synchronised waves of retries."""

    max_attempts: int = 4
    base_s: float = 0.5
    cap_s: float = 30.0
    jitter: Literal["full"] = "full"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError(f"base_s and cap_s must be >= 0, got {self.base_s}, {self.cap_s}")

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first attempt).

        Drawn from uniform(0, min(cap_s, base_s * 2**attempt)), and never shorter than the
        server's Retry-After (which is not capped: the server knows when it will take us back).
        """
        # 2.0**attempt overflows a float past ~1023; any cap is reached long before 64.
        ceiling = self.cap_s if attempt >= 64 else min(self.cap_s, self.base_s * 2.0**attempt)
        wait = rng.uniform(0.0, ceiling)
        if retry_after_s is not None and retry_after_s > wait:
            wait = retry_after_s
        return wait


@dataclass(frozen=True, kw_only=True)
class Prices:
    """USD per 1,000 tokens."""

    prompt_per_1k: float = 0.0
    completion_per_1k: float = 0.0

    def __post_init__(self) -> None:
        for name in ("prompt_per_1k", "completion_per_1k"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.prompt_per_1k + completion_tokens * self.completion_per_1k
        ) / 1000.0


_PRICE_KEYS = ("prompt_per_1k", "completion_per_1k")


def load_price_table(spec: str) -> dict[str, Prices]:
    """Model name -> Prices, from a JSON object or a path to a .json/.yaml/.yml file.

    `{"gpt-4o": {"prompt_per_1k": 0.0025, "completion_per_1k": 0.01}}`. Both prices are
    required (write 0 for free): a typo or a missing key would otherwise cost nothing and
    let a run overspend its budget unnoticed. Errors raise ValueError naming the model and key.
    """
    text = spec.strip()
    if text.startswith("{"):
        source = "price table (JSON string)"
        try:
            data: object = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: invalid JSON: {exc}") from exc
    else:
        path = Path(spec).expanduser()
        source = f"price table {path}"
        if not path.is_file():
            raise ValueError(f"{source}: not a JSON object and no such file")
        raw = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml  # a project dependency; imported here so JSON users never need it

            try:
                data = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ValueError(f"{source}: invalid YAML: {exc}") from exc
        else:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{source}: invalid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a mapping of model -> prices, got {_kind(data)}")
    table: dict[str, Prices] = {}
    for model, entry in data.items():
        if not isinstance(model, str) or not model:
            raise ValueError(f"{source}: model names must be non-empty strings, got {model!r}")
        if not isinstance(entry, Mapping):
            raise ValueError(f"{source}: {model!r}: expected a mapping, got {_kind(entry)}")
        unknown = sorted(str(k) for k in entry if k not in _PRICE_KEYS)
        if unknown:
            raise ValueError(
                f"{source}: {model!r}: unknown key {unknown[0]!r} "
                f"(expected {', '.join(_PRICE_KEYS)})"
            )
        values: dict[str, float] = {}
        for key in _PRICE_KEYS:
            if key not in entry:
                raise ValueError(f"{source}: {model!r}: missing {key!r}")
            value = entry[key]
            # bool is an int subclass: `true` in a YAML file is a typo, not a price of 1.
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"{source}: {model!r}.{key} must be a number >= 0 (USD per 1k tokens), "
                    f"got {value!r}"
                )
            values[key] = float(value)
        table[model] = Prices(**values)
    return table


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


class BudgetExceeded(RuntimeError):
    """The run has spent its budget; no further paid calls should start."""


class Budget:
    """Dollars spent by a run against an optional limit.

    Check before starting each call; calls already in flight still finish and are charged,
    so a run can overshoot by at most (calls in flight) x (cost of one call).
    """

    def __init__(self, limit_usd: float | None) -> None:
        if limit_usd is not None and (not math.isfinite(limit_usd) or limit_usd < 0):
            raise ValueError(f"budget must be a finite number >= 0 or None, got {limit_usd!r}")
        self.limit_usd = limit_usd
        self._spent = 0.0

    def charge(self, usd: float) -> None:
        if not math.isfinite(usd) or usd < 0:
            raise ValueError(f"charge must be a finite number >= 0, got {usd!r}")
        self._spent += usd

    @property
    def spent(self) -> float:
        return self._spent

    @property
    def remaining(self) -> float | None:
        if self.limit_usd is None:
            return None
        return max(0.0, self.limit_usd - self._spent)

    @property
    def exhausted(self) -> bool:
        return self.limit_usd is not None and self._spent >= self.limit_usd

    def check(self) -> None:
        if self.exhausted:
            raise BudgetExceeded(
                f"budget exhausted: spent ${self._spent:.4f} of ${self.limit_usd:.4f}"
            )


_RNG = random.Random()


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    limiter: AdaptiveLimiter,
    policy: RetryPolicy,
    deadline_s: float,
    classify: Callable[[BaseException], Classification],
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[T, int]:
    """Run `fn` under `limiter`, retrying as `classify` says; return (value, attempts).

    Each attempt holds a limiter slot only while `fn` runs (backoff sleeps free it for
    others) and reports its outcome to the limiter. The deadline starts when the first attempt
    gets its slot (time queued behind other requests is the caller's backlog, not this
    request's latency) and covers every later attempt, slot wait and backoff.

    A backend that says when to come back (429 or 503 with Retry-After) is asked again for as
    long as the deadline allows: a rate-limit storm of a minute must not end a run. Other
    failures (5xx, dropped connections, 429 without Retry-After) count toward
    `policy.max_attempts`.

    Raises: the error itself for "fatal"; the last error once `policy.max_attempts` attempts
    have failed otherwise, or when the next backoff would end past the deadline; TimeoutError
    when the deadline passes during an attempt or a slot wait (chained to the last error).
    """
    if deadline_s <= 0:
        raise ValueError(f"deadline_s must be > 0, got {deadline_s}")
    rng = rng or _RNG
    loop = asyncio.get_running_loop()
    attempts = failures = 0
    last_error: Exception | None = None
    deadline: float | None = None
    try:
        async with asyncio.timeout(None) as timeout:
            while True:
                async with limiter.slot() as slot:
                    if deadline is None:
                        deadline = loop.time() + deadline_s
                        timeout.reschedule(deadline)
                    attempts += 1
                    try:
                        value = await fn()
                    except Exception as exc:
                        error = last_error = exc
                        kind, retry_after = classify(exc)
                        if kind == "retry_overloaded":
                            slot.overloaded(retry_after)
                        else:
                            slot.error()
                    else:
                        slot.ok()
                        return value, attempts
                if kind != "retry_overloaded" or retry_after is None:
                    failures += 1
                if kind == "fatal" or failures >= policy.max_attempts:
                    raise error
                # Backoff grows with every attempt (capped by the policy), storms included.
                wait = policy.delay(attempts - 1, retry_after, rng)
                # Sleeping into the deadline only to fail there would waste the wait.
                if loop.time() + wait >= deadline:
                    raise error
                await sleep(wait)
    except TimeoutError as exc:
        if exc is last_error or not timeout.expired():
            raise
        raise TimeoutError(
            f"deadline of {deadline_s:g}s passed after {attempts} attempt(s)"
        ) from last_error


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), else None."""
    if headers is None:
        return None
    # OpenAI and Azure send retry-after-ms alongside the standard header; it is more precise.
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def classify_openai_error(exc: BaseException) -> Classification:
    """How `call_with_retries` should treat an error from the OpenAI SDK.

    429 and 5xx: the backend is overloaded (back the limiter off, honour Retry-After).
    Timeouts, connection failures, 408 and 409: retry without blaming load (the SDK's own
    retry rules treat 408/409 as transient too). Anything else (400, 401, 403, 404, 422,
    non-OpenAI errors) would fail the same way again: fatal.
    """
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if isinstance(exc, openai.RateLimitError) or status == 429 or status >= 500:
            return "retry_overloaded", parse_retry_after(exc.response.headers)
        if status in (408, 409):
            return "retry_error", None
        return "fatal", None
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is a subclass
        return "retry_error", None
    return "fatal", None
