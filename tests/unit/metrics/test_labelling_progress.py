"""When people have labelled enough: each model's confidence sequence over the app's labels."""

from __future__ import annotations

import numpy as np
import pytest

from harmeval_metrics.few_labels import assisted_confidence_sequence, bounded_confidence_sequence
from harmeval_metrics.labelling_progress import (
    MIN_LABELS,
    UNSCORED,
    JudgeIncomplete,
    NotUniform,
    labelled_run,
    labelling_progress,
)
from harmeval_metrics.records import StudyLabel
from harmeval_metrics.study_figures import Study

MODELS = ("m1", "m2")


def label(coder: str, kind: str, prompt: int, model: str, harmful: bool | None) -> StudyLabel:
    return StudyLabel(
        coder=coder,
        annotator=coder,
        coder_kind=kind,
        prompt_id=prompt,
        external_id=f"q{prompt}",
        category="c",
        model=model,
        generation_id=prompt * 10 + MODELS.index(model),
        status="ok" if harmful is not None else "unscorable",
        harmful=harmful,
        rank=None,
        value=None if harmful is None else float(harmful),
    )


def study(
    n_prompts: int, labelled: int, *, unscorable: int = 0
) -> tuple[Study, list[tuple[int, str]], dict[tuple[int, str], bool]]:
    """A judge that agrees with people on every answer but the first `unscorable` prompts'
    (no verdict); alice labels `labelled` prompts first, bob then labels them all again."""
    rng = np.random.default_rng(5)
    truth = {(p, m): bool(rng.random() < 0.3) for p in range(n_prompts) for m in MODELS}
    labels = [
        label("judge", "model", p, m, None if p < unscorable else h) for (p, m), h in truth.items()
    ]
    visit = [int(p) for p in rng.permutation(n_prompts)[:labelled]]
    labels += [label("alice", "human", p, m, truth[p, m]) for p in visit for m in MODELS]
    # bob labels every prompt later, all harmful: an overlap label never enters the sequence.
    labels += [label("bob", "human", p, m, True) for p in visit for m in MODELS]
    return Study(labels=labels, models=MODELS), [(p, "alice") for p in visit], truth


def answers(n_prompts: int) -> set[tuple[int, str]]:
    return {(p, m) for p in range(n_prompts) for m in MODELS}


def test_each_model_gets_the_first_labellers_sequence_alone_or_judge_assisted() -> None:
    s, order, truth = study(1000, 400)
    queue = {p: 0.4 for p in range(1000)}
    every = answers(1000)
    alone = labelling_progress(s, order, inclusion=queue, answers=every, half_width=0.1)
    helped = labelling_progress(
        s, order, judge="judge", inclusion=queue, answers=every, half_width=0.1
    )
    for a, h, model in zip(alone, helped, MODELS, strict=True):
        y = np.array([float(truth[p, model]) for p, _ in order])  # alice's, never bob's
        cs = bounded_confidence_sequence(y, half_width=0.1)
        assert (a.model, a.n_units, a.n_labelled) == (model, 1000, 400)
        assert (a.estimate, a.ci_low, a.ci_high) == pytest.approx(
            (cs.estimate[-1], cs.ci_low[-1], cs.ci_high[-1])
        )
        judge_mean = np.mean([truth[p, model] for p in range(1000)])
        assisted = assisted_confidence_sequence(y, y, float(judge_mean), half_width=0.1)
        assert h.judge_only == pytest.approx(judge_mean)
        assert (h.ci_low, h.ci_high) == pytest.approx(
            (max(assisted.ci_low[-1], 0.0), min(assisted.ci_high[-1], 1.0))  # a rate: in [0, 1]
        )
        # A judge that agrees with people narrows the sequence (once there are enough labels
        # for its variance to matter more than the wider range of its terms).
        assert h.ci_high - h.ci_low < 0.6 * (a.ci_high - a.ci_low)
        assert a.enough and h.enough


def test_an_answer_the_judge_did_not_score_counts_as_a_fixed_guess() -> None:
    s, order, truth = study(100, 60, unscorable=10)
    [m1, _] = labelling_progress(
        s, order, judge="judge", inclusion={p: 1.0 for p in range(100)}, answers=answers(100)
    )
    assert m1.judge_unscored == 10
    expected = np.mean([UNSCORED if p < 10 else truth[p, "m1"] for p in range(100)])
    assert m1.judge_only == pytest.approx(expected) and m1.estimate is not None


def test_the_judge_mean_is_over_the_queues_prompts_only() -> None:
    s, order, truth = study(100, 30)
    queue = {p: 1.0 for p in range(100) if p % 2 == 0 or p in dict(order)}
    queued = {u for u in answers(100) if u[0] in queue}
    [m1, _] = labelling_progress(s, order, judge="judge", inclusion=queue, answers=queued)
    assert m1.judge_only == pytest.approx(np.mean([truth[p, "m1"] for p in queue]))


def test_enough_needs_thirty_labels_and_the_half_width() -> None:
    s, order, _ = study(100, MIN_LABELS - 1)
    queue = {p: 0.5 for p in range(100)}
    every = answers(100)
    few = labelling_progress(s, order, inclusion=queue, answers=every, half_width=0.5)
    assert not any(m.enough for m in few)
    s, order, _ = study(100, 60)
    strict = labelling_progress(s, order, inclusion=queue, answers=every, half_width=0.01)
    assert not any(m.enough for m in strict)
    # The bets are tuned for the queue's rule: asking another threshold changes no bound.
    tuned = labelling_progress(
        s, order, inclusion=queue, answers=every, half_width=0.2, tune_width=0.05
    )
    same = labelling_progress(
        s, order, inclusion=queue, answers=every, half_width=0.05, tune_width=0.05
    )
    assert [(m.ci_low, m.ci_high) for m in tuned] == [(m.ci_low, m.ci_high) for m in same]


def test_a_fully_labelled_all_prompt_queue_is_exact() -> None:
    s, order, truth = study(40, 40)
    queue = {p: 1.0 for p in range(40)}
    for m in labelling_progress(s, order, inclusion=queue, answers=answers(40), half_width=0.01):
        rate = np.mean([truth[p, m.model] for p in range(40)])
        assert (m.estimate, m.ci_low, m.ci_high, m.enough) == (rate, rate, rate, True)


def test_an_active_queue_has_no_stopping_sequence() -> None:
    s, order, _ = study(20, 10)
    with pytest.raises(NotUniform, match="active design"):
        labelling_progress(
            s, order, inclusion={p: 0.2 + 0.01 * p for p in range(20)}, answers=answers(20)
        )
    with pytest.raises(NotUniform):
        labelling_progress(
            s, order, inclusion={p: 0.5 for p in range(20)}, answers=answers(20), design="active"
        )


def test_no_label_yet_gives_counts_only() -> None:
    s, _, _ = study(20, 0)
    [m1, _] = labelling_progress(s, [], inclusion={p: 1.0 for p in range(20)}, answers=answers(20))
    assert (m1.n_labelled, m1.estimate, m1.enough) == (0, None, False)


def test_a_judge_must_have_judged_every_queued_answer() -> None:
    s, order, _ = study(20, 10)
    queue = {p: 1.0 for p in range(20)}
    with pytest.raises(JudgeIncomplete, match="no verdict on 2 of the queue's 42 answers"):
        labelling_progress(
            s, order, judge="judge", inclusion=queue, answers=answers(20) | {(20, "m1"), (21, "m1")}
        )


def test_the_run_stops_at_the_first_prompt_nobody_labelled() -> None:
    order = [(5, "ann"), (2, "bo"), (9, None), (1, "ann"), (4, None), (3, "cy")]
    assert labelled_run(order) == ([(5, "ann"), (2, "bo")], 2)
    assert labelled_run([(1, "a"), (2, "b")]) == ([(1, "a"), (2, "b")], 0)


def test_people_are_found_by_annotator_whatever_coder_they_label_as() -> None:
    """An annotator imported earlier under a shared coder ("students") keeps that coder: their
    app labels still count."""
    labels = [
        StudyLabel(
            coder="students",
            annotator="alice",
            coder_kind="human",
            prompt_id=p,
            external_id=f"q{p}",
            category="c",
            model="m1",
            generation_id=p,
            status="ok",
            harmful=p % 4 == 0,
            rank=None,
            value=None,
        )
        for p in range(40)
    ]
    s = Study(labels=labels, models=("m1",))
    [m1] = labelling_progress(
        s,
        [(p, "alice") for p in range(40)],
        inclusion={p: 0.5 for p in range(80)},
        answers={(p, "m1") for p in range(80)},
    )
    assert m1.n_labelled == 40 and m1.estimate == pytest.approx(0.25)
