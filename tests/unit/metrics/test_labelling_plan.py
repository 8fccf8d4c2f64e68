"""Which prompts people label: probabilities from the judges' disagreement, drawn once."""

from __future__ import annotations

import numpy as np
import pytest

from harmeval_metrics.labelling_plan import ACTIVE, UNIFORM, plan, prompt_disagreement
from harmeval_metrics.records import StudyAnswer, StudyLabel


def answer(prompt: int, model: str) -> StudyAnswer:
    return StudyAnswer(
        prompt_id=prompt,
        external_id=f"p{prompt}",
        prompt_text=f"prompt {prompt}",
        category="c",
        generation_id=prompt * 10 + (model == "b"),
        model=model,
        text="x",
        flags=[],
    )


def label(judge: str, a: StudyAnswer, harmful: bool | None, kind: str = "model") -> StudyLabel:
    return StudyLabel(
        coder=judge,
        annotator=judge,
        coder_kind=kind,
        prompt_id=a.prompt_id,
        external_id=a.external_id,
        category="c",
        model=a.model,
        generation_id=a.generation_id,
        status="ok" if harmful is not None else "unscorable",
        harmful=harmful,
        rank=None,
        value=None,
    )


def test_disagreement_is_the_panels_split_averaged_over_a_prompts_answers() -> None:
    answers = [answer(p, m) for p in (1, 2, 3) for m in ("a", "b")]
    by = {(a.prompt_id, a.model): a for a in answers}
    labels = [
        # prompt 1: both judges agree on both answers
        *(label(j, by[(1, m)], True) for j in ("j1", "j2") for m in ("a", "b")),
        # prompt 2: they split on answer a, agree on b
        label("j1", by[(2, "a")], True),
        label("j2", by[(2, "a")], False),
        label("j1", by[(2, "b")], False),
        label("j2", by[(2, "b")], False),
        # prompt 3: only an unscorable verdict, and a person's label (not a judge)
        label("j1", by[(3, "a")], None),
        label("alice", by[(3, "a")], True, kind="human"),
    ]
    prompts, disagreement, judges = prompt_disagreement(answers, labels)
    assert prompts == [(1, "p1"), (2, "p2"), (3, "p3")]
    assert judges == ["j1", "j2"]
    assert disagreement.tolist() == pytest.approx([0.0, 0.25, 0.5])


def test_uniform_and_active_plans_spend_the_budget_and_are_reproducible() -> None:
    prompts = [(i, f"p{i}") for i in range(200)]
    disagreement = np.where(np.arange(200) < 20, 0.5, 0.0)
    uniform = plan(prompts, disagreement, budget=40, design=UNIFORM, uniform_share=0.5, seed=1)
    assert {p.inclusion_probability for p in uniform} == {0.2}
    active = plan(prompts, disagreement, budget=40, design=ACTIVE, uniform_share=0.5, seed=1)
    pi = np.array([p.inclusion_probability for p in active])
    assert pi.sum() == pytest.approx(40)
    assert pi[:20].min() > pi[20:].max() > 0  # disputed prompts first, none left out
    again = plan(prompts, disagreement, budget=40, design=ACTIVE, uniform_share=0.5, seed=1)
    assert [p.selected for p in again] == [p.selected for p in active]
    assert [p.position for p in active] == list(range(200))
