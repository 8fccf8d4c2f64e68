"""Per-coder harm ranking of models, against hand-computed expectations."""

from __future__ import annotations

import pytest

from harmeval_metrics.ranking import CoderJudgment, ModelHarm, rank_models


def _j(coder: str, model: str, prompt: str, harmful: bool, rank: int | None) -> CoderJudgment:
    return CoderJudgment(coder=coder, model=model, prompt=prompt, harmful=harmful, rank=rank)


def test_pointwise_and_ranking_coders() -> None:
    judgments = [
        # Pointwise judge: m1 harmful on 1/4, m2 on 3/4, m3 on 1/2 -> order m2, m3, m1.
        _j("judge", "m1", "p1", True, None),
        _j("judge", "m1", "p2", False, None),
        _j("judge", "m1", "p3", False, None),
        _j("judge", "m1", "p4", False, None),
        _j("judge", "m2", "p1", True, None),
        _j("judge", "m2", "p2", True, None),
        _j("judge", "m2", "p3", True, None),
        _j("judge", "m2", "p4", False, None),
        _j("judge", "m3", "p1", True, None),
        _j("judge", "m3", "p2", False, None),
        # Ranking human (k = 2): N/A (0) counts as 0 in the mean.
        # m1: ranks 2, 0, 1 -> mean 1.0; harmful 2/3.  m2: ranks 1, 2, 0 -> mean 1.0; 2/3.
        _j("human", "m2", "p1", True, 1),
        _j("human", "m2", "p2", True, 2),
        _j("human", "m2", "p3", False, 0),
        _j("human", "m1", "p1", True, 2),
        _j("human", "m1", "p2", False, 0),
        _j("human", "m1", "p3", True, 1),
    ]
    assert rank_models(judgments) == [
        ModelHarm(
            coder="human", model="m1", harm_rate=2 / 3, mean_rank=1.0, n_scored=3
        ),  # tie on harm_rate -> model name
        ModelHarm(coder="human", model="m2", harm_rate=2 / 3, mean_rank=1.0, n_scored=3),
        ModelHarm(coder="judge", model="m2", harm_rate=0.75, mean_rank=None, n_scored=4),
        ModelHarm(coder="judge", model="m3", harm_rate=0.5, mean_rank=None, n_scored=2),
        ModelHarm(coder="judge", model="m1", harm_rate=0.25, mean_rank=None, n_scored=4),
    ]


def test_mean_rank_values() -> None:
    # ranks 3, 0, 0, 1 -> 4 / 4 = 1.0; ranks 3, 3 -> 3.0
    judgments = [
        _j("r", "a", "p1", True, 3),
        _j("r", "a", "p2", False, 0),
        _j("r", "a", "p3", False, 0),
        _j("r", "a", "p4", True, 1),
        _j("r", "b", "p1", True, 3),
        _j("r", "b", "p2", True, 3),
    ]
    result = rank_models(iter(judgments))  # any iterable, consumed once
    assert [(m.model, m.harm_rate, m.mean_rank, m.n_scored) for m in result] == [
        ("b", 1.0, 3.0, 2),
        ("a", 0.5, 1.0, 4),
    ]


def test_mean_rank_uses_only_judgments_with_a_rank() -> None:
    # One rank missing (None): mean over the ranked ones (2 + 0) / 2; harm_rate over all 3.
    judgments = [
        _j("r", "a", "p1", True, 2),
        _j("r", "a", "p2", False, 0),
        _j("r", "a", "p3", True, None),
    ]
    assert rank_models(judgments) == [
        ModelHarm(coder="r", model="a", harm_rate=2 / 3, mean_rank=1.0, n_scored=3)
    ]


def test_empty_input() -> None:
    assert rank_models([]) == []


def test_duplicate_judgment_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        rank_models([_j("c", "m", "p", True, None), _j("c", "m", "p", False, None)])


def test_negative_rank_rejected() -> None:
    with pytest.raises(ValueError, match="rank"):
        rank_models([_j("c", "m", "p", True, -1)])
