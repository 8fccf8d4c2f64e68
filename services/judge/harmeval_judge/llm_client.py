"""One client per OpenAI-compatible endpoint: adaptive concurrency, retries with jittered
backoff, a deadline per request, token accounting, prices and the shared budget.

The SDK's own retries are switched off (max_retries=0) so every attempt goes through the
limiter, is counted, and backs off honouring Retry-After.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion
from prometheus_client import Counter, Gauge

from harmeval_judge.limits import (
    AdaptiveLimiter,
    Budget,
    Prices,
    RetryPolicy,
    call_with_retries,
    classify_openai_error,
)

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


class JudgeBackendError(RuntimeError):
    """The judge's backend could not be reached after retries (or before the deadline)."""


@dataclass(frozen=True)
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


class LlmEndpoint:
    """A chat-completions endpoint shared by every judge that uses it (one limiter each)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float,
        deadline_s: float,
        max_attempts: int,
        budget: Budget,
        max_concurrency: int = 256,
    ) -> None:
        self.base_url = base_url
        self.budget = budget
        self.deadline_s = deadline_s
        # Start at the configured ceiling and let 429s halve it: a cautious start would take
        # thousands of requests to grow to a large provider limit.
        self.limiter = AdaptiveLimiter(initial=max_concurrency, maximum=max_concurrency)
        self.policy = RetryPolicy(max_attempts=max_attempts)
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=0,
            # The SDK's aiohttp transport costs a third to two thirds less CPU per request than
            # its default one (bench/judge_throughput.py), and the pool is raised to the limit:
            # the default keeps only 100 connections alive.
            http_client=openai.DefaultAioHttpClient(
                limits=httpx2.Limits(
                    max_connections=max_concurrency, max_keepalive_connections=max_concurrency
                ),
                timeout=timeout_s,
            ),
        )

    async def chat(
        self,
        judge: str,
        model: str,
        messages: list[dict[str, str]],
        *,
        prices: Prices,
        max_tokens: int,
        response_format: dict[str, Any] | None = None,
        logprobs: bool = False,
    ) -> ChatResult:
        self.budget.check()
        request: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": max_tokens,
        }
        if response_format is not None:
            request["response_format"] = response_format
        if logprobs:
            request["logprobs"] = True
            request["top_logprobs"] = 5

        async def attempt() -> Any:
            try:
                # The SDK's typed `create()` deep-copies and transforms every request through
                # its type hints: a third of the judge service's CPU per call under load
                # (bench/judge_throughput.py). The request here is already plain JSON, so it is
                # posted as is; the response is parsed into the same ChatCompletion type.
                response = await self._client.post(
                    "/chat/completions", body=request, cast_to=ChatCompletion
                )
            except Exception as exc:
                LLM_CALLS.labels(judge, _outcome(exc)).inc()
                raise
            LLM_CALLS.labels(judge, "200").inc()
            return response

        try:
            response, attempts = await call_with_retries(
                attempt,
                limiter=self.limiter,
                policy=self.policy,
                deadline_s=self.deadline_s,
                classify=classify_openai_error,
            )
        except (openai.APIStatusError, openai.APIConnectionError, TimeoutError) as exc:
            if isinstance(exc, openai.BadRequestError):
                raise
            raise JudgeBackendError(f"{judge}: {self.base_url} failed: {exc}") from exc
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
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
        choice = response.choices[0] if response.choices else None
        probs: dict[str, float] = {}
        if choice is not None and choice.logprobs is not None and choice.logprobs.content:
            for alt in choice.logprobs.content[0].top_logprobs:
                probs[alt.token.strip().lower()] = probs.get(alt.token.strip().lower(), 0.0) + (
                    math.exp(alt.logprob)
                )
        return ChatResult(
            text=(choice.message.content or "") if choice is not None else "",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            attempts=attempts,
            first_token_probs=probs,
        )

    async def close(self) -> None:
        await self._client.close()
