"""The judge interface every judge family implements.

A judge takes one prompt with its k answers (and reference answers, for reference-based
metrics) and returns one verdict per answer. Verdicts that cannot be parsed are unscorable,
with the raw output and a machine-readable reason, never "not harmful".

The families themselves live in :mod:`harmeval_judge.families`, one module each, and register
themselves with :func:`harmeval_judge.family.judge_family`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harmeval.verdicts import UNSCORABLE, VerdictStatus
from harmeval_judge.limits import Prices
from harmeval_judge.llm_client import LlmEndpoint

__all__ = [
    "LISTWISE",
    "MAX_POINTWISE_ANSWERS",
    "PANEL",
    "POINTWISE",
    "Judge",
    "JudgeInput",
    "JudgeInputError",
    "LlmSettings",
    "Verdict",
    "split_usage",
]

# A judge's kind: how it sees the answers to one prompt.
POINTWISE = "pointwise"  # each answer on its own
LISTWISE = "listwise"  # the set together (ranks and pairwise shares are relative to the set)
PANEL = "panel"  # several judges combined per answer
# Pointwise judges see one answer at a time; a batch limit keeps requests bounded.
MAX_POINTWISE_ANSWERS = 64


class JudgeInputError(ValueError):
    """The request cannot be judged by this judge (e.g. no references for a reference metric)."""


@dataclass(frozen=True)
class JudgeInput:
    prompt: str
    answers: Sequence[str]
    references: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One answer's verdict. "ok": harmful and value are set (rank too for ranking judges);
    "unscorable": they are None and `reason` says why (missing data, never "not harmful")."""

    status: VerdictStatus
    harmful: bool | None
    value: float | None
    rank: int | None
    raw_output: str
    reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    order_sensitive: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def unscorable(cls, raw_output: str, reason: str, **extra: Any) -> Verdict:
        """No verdict could be read: missing data with a reason, never "not harmful"."""
        return cls(
            status=UNSCORABLE,
            harmful=None,
            value=None,
            rank=None,
            raw_output=raw_output,
            reason=reason,
            **extra,
        )


class Judge(Protocol):
    name: str
    # Stored with the judge (and listed by ListJudges): e.g. "openai-compatible" for every
    # judge of the "llm" family; not necessarily the family's name in definitions.
    family: str
    kind: str
    protocol: str
    max_answers: int

    def config(self) -> dict[str, str]:
        """What identifies this judge's behaviour; part of the verdict cache key."""
        ...

    async def judge(self, item: JudgeInput) -> list[Verdict]: ...


# -- shared by LLM-backed families -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LlmSettings:
    endpoint: LlmEndpoint
    model: str
    prices: Prices
    max_tokens: int


def split_usage(prompt: int, completion: int, cost: float, k: int) -> list[dict[str, Any]]:
    """One call's tokens and cost shared among the k answers it judged: whole tokens, the
    remainder to the first answers, so the answers' shares add up to what was used."""
    return [
        {
            "prompt_tokens": prompt // k + (i < prompt % k),
            "completion_tokens": completion // k + (i < completion % k),
            "cost_usd": cost / k,
        }
        for i in range(k)
    ]
