"""When people have labelled enough: each model's confidence sequence over the app's labels."""

from __future__ import annotations

import numpy as np
import pytest

from harmeval_metrics.few_labels import assisted_confidence_sequence, confidence_sequence
from harmeval_metrics.labelling_progress import MIN_LABELS, T_OPT, NotUniform, labelling_progress
from harmeval_metrics.records import StudyLabel
from harmeval_metrics.study_figures import Study

MODELS = ("m1", "m2")


def label(coder: str, kind: str, prompt: int, model: str, harmful: bool) -> StudyLabel:
    return StudyLabel(
        coder=coder,
        annotator=coder,
        coder_kind=kind,
        prompt_id=prompt,
        external_id=f"q{prompt}",
        category="c",
        model=model,
        generation_id=prompt * 10 + MODELS.index(model),
        status="ok",
        harmful=harmful,
        rank=None,
        value=float(harmful),
    )


def study(n_prompts: int, labelled: int) -> tuple[Study, list[int]]:
    rng = np.random.default_rng(5)
    truth = {(p, m): bool(rng.random() < 0.3) for p in range(n_prompts) for m in MODELS}
    labels = [label("judge", "model", p, m, h) for (p, m), h in truth.items()]
    order = [int(p) for p in rng.permutation(n_prompts)[:labelled]]
    labels += [label("alice", "human", p, m, truth[p, m]) for p in order for m in MODELS]
    return Study(labels=labels, models=MODELS), order


def test_each_model_gets_people_alone_or_the_judge_assisted_sequence() -> None:
    s, order = study(100, 60)
    uniform = {p: 0.6 for p in range(100)}
    alone = labelling_progress(s, order, inclusion=uniform, half_width=0.5)
    helped = labelling_progress(s, order, judge="judge", inclusion=uniform, half_width=0.5)
    for a, h, model in zip(alone, helped, MODELS, strict=True):
        y = np.array([float(s.truth[p, model].harmful) for p in order])
        cs = confidence_sequence(y, t_opt=T_OPT)
        assert (a.model, a.n_units, a.n_labelled) == (model, 100, 60)
        assert (a.estimate, a.ci_low, a.ci_high) == pytest.approx(
            (cs.estimate[-1], max(cs.ci_low[-1], 0.0), min(cs.ci_high[-1], 1.0))
        )
        judge_mean = np.mean([s.by_coder["judge"][p, model].harmful for p in range(100)])
        assisted = assisted_confidence_sequence(y, y, float(judge_mean), t_opt=T_OPT)
        assert h.judge_only == pytest.approx(judge_mean)
        assert h.estimate == pytest.approx(assisted.estimate[-1])
        # A judge that agrees with people: once λ is learnt, the rate is the judge's exactly.
        assert h.ci_high - h.ci_low < a.ci_high - a.ci_low
        assert a.enough and h.enough


def test_enough_needs_the_half_width_and_thirty_labels() -> None:
    s, order = study(100, MIN_LABELS - 1)
    wide_open = labelling_progress(s, order, inclusion={p: 1.0 for p in range(100)}, half_width=0.5)
    assert not any(m.enough for m in wide_open)
    s, order = study(100, 60)
    strict = labelling_progress(s, order, inclusion={p: 1.0 for p in range(100)}, half_width=0.01)
    assert not any(m.enough for m in strict)


def test_an_active_queue_has_no_stopping_sequence() -> None:
    s, order = study(20, 10)
    with pytest.raises(NotUniform, match="active design"):
        labelling_progress(s, order, inclusion={p: 0.2 + 0.01 * p for p in range(20)})


def test_no_label_yet_gives_counts_only() -> None:
    s, _ = study(20, 0)
    [m1, _] = labelling_progress(s, [], inclusion={p: 1.0 for p in range(20)})
    assert (m1.n_labelled, m1.estimate, m1.enough) == (0, None, False)
