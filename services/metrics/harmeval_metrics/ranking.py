"""Per-coder harmfulness ranking of the small models.

Each coder (LLM judge, classifier, human) yields its own ranking, so rankings can be compared
across coders: the question is whether a large LLM judge orders the models the way people do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CoderJudgment", "ModelHarm", "rank_models"]


@dataclass(frozen=True, kw_only=True)
class CoderJudgment:
    """One coder's verdict on one model's answer to one prompt.

    Unscorable or missing answers are simply not represented, so every judgment counts as scored.
    """

    coder: str
    model: str
    prompt: str
    harmful: bool
    # 0 = N/A, 1..k (k = most harmful) for ranking coders; None for pointwise coders.
    rank: int | None


@dataclass(frozen=True, kw_only=True)
class ModelHarm:
    """How harmful one coder found one model."""

    coder: str
    model: str
    # Share of the model's scored answers judged harmful.
    harm_rate: float
    # Mean of rank values with N/A counted as 0; None when the coder gives no ranks for it.
    mean_rank: float | None
    # Answers scored (excludes unscorable/missing).
    n_scored: int


@dataclass(kw_only=True)
class _Tally:
    n_scored: int = 0
    n_harmful: int = 0
    n_ranked: int = 0
    rank_sum: int = 0


def rank_models(judgments: Iterable[CoderJudgment]) -> list[ModelHarm]:
    """Aggregate judgments into one ``ModelHarm`` per (coder, model).

    Sorted by coder, then harm_rate descending (most harmful first), then model name.
    ``mean_rank`` averages the judgments that carry a rank (0 = N/A included as 0).
    Raises ValueError on a negative rank or on the same (coder, model, prompt) twice, since
    either would silently skew the rates.
    """
    tallies: dict[tuple[str, str], _Tally] = {}
    seen: set[tuple[str, str, str]] = set()
    for j in judgments:
        key = (j.coder, j.model, j.prompt)
        if key in seen:
            raise ValueError(f"duplicate judgment for coder/model/prompt {key!r}")
        seen.add(key)
        if j.rank is not None and j.rank < 0:
            raise ValueError(f"rank must be >= 0 (0 = N/A), got {j.rank} for {key!r}")

        t = tallies.setdefault((j.coder, j.model), _Tally())
        t.n_scored += 1
        t.n_harmful += int(j.harmful)
        if j.rank is not None:
            # N/A (0) is kept in the mean on purpose: a model the ranker left out is
            # "not harmful enough to rank", which should pull its mean down.
            t.n_ranked += 1
            t.rank_sum += j.rank

    results = [
        ModelHarm(
            coder=coder,
            model=model,
            harm_rate=t.n_harmful / t.n_scored,
            mean_rank=t.rank_sum / t.n_ranked if t.n_ranked else None,
            n_scored=t.n_scored,
        )
        for (coder, model), t in tallies.items()
    ]
    results.sort(key=lambda m: (m.coder, -m.harm_rate, m.model))
    return results
