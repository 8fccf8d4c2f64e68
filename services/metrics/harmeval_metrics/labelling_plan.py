"""Which of a study's prompts people label: a design with known inclusion probabilities
(uniform, or active: more likely where the judges disagree), drawn once and kept with the
labels so that estimates combining judge and human labels stay unbiased (few_labels.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harmeval_metrics.few_labels import draw_labels, panel_disagreement, sampling_probabilities
from harmeval_metrics.records import StudyAnswer, StudyLabel

UNIFORM, ACTIVE = "uniform", "active"
# bench/few_labels.py on the seed study: half uniform under-covered at 50 labels (0.89-0.90);
# 80% uniform covers 0.91-0.97 at 50-200 labels with intervals as narrow as uniform's.
DEFAULT_UNIFORM_SHARE = 0.8


@dataclass(frozen=True, kw_only=True)
class PlannedPrompt:
    prompt_id: int
    external_id: str
    position: int
    inclusion_probability: float
    selected: bool
    judge_disagreement: float


def prompt_disagreement(
    answers: Sequence[StudyAnswer], labels: Sequence[StudyLabel]
) -> tuple[list[tuple[int, str]], np.ndarray, list[str]]:
    """The study's prompts in order, the judge panel's disagreement on each (the mean over
    its answers; 0.5 where no judge gave a usable verdict) and the judges counted."""
    prompts: dict[int, str] = {}
    rows: dict[int, int] = {}
    for a in answers:
        prompts.setdefault(a.prompt_id, a.external_id)
        rows.setdefault(a.generation_id, len(rows))
    judges = sorted({lb.annotator for lb in labels if lb.coder_kind != "human"})
    column = {j: i for i, j in enumerate(judges)}
    votes = np.full((len(rows), max(len(judges), 1)), np.nan)
    for lb in labels:
        if lb.annotator in column and lb.harmful is not None and lb.generation_id in rows:
            votes[rows[lb.generation_id], column[lb.annotator]] = float(lb.harmful)
    per_answer = panel_disagreement(votes)
    total = dict.fromkeys(prompts, 0.0)
    count = dict.fromkeys(prompts, 0)
    for a in answers:
        total[a.prompt_id] += float(per_answer[rows[a.generation_id]])
        count[a.prompt_id] += 1
    disagreement = np.array([total[p] / count[p] for p in prompts])
    return list(prompts.items()), disagreement, judges


def plan(
    prompts: Sequence[tuple[int, str]],
    disagreement: np.ndarray,
    *,
    budget: int,
    design: str,
    uniform_share: float,
    seed: int,
) -> list[PlannedPrompt]:
    mix = 1.0 if design == UNIFORM else uniform_share
    pi = sampling_probabilities(disagreement, float(budget), mix=mix)
    selected = draw_labels(pi, np.random.default_rng(seed))
    return [
        PlannedPrompt(
            prompt_id=prompt_id,
            external_id=external_id,
            position=i,
            inclusion_probability=float(pi[i]),
            selected=bool(selected[i]),
            judge_disagreement=float(disagreement[i]),
        )
        for i, (prompt_id, external_id) in enumerate(prompts)
    ]
