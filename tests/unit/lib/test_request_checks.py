"""The checks every request gets at the boundary, whatever its RPC."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import message_factory
from google.protobuf.message import Message

from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2
from harmeval.judge.v1 import judge_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval.request_checks import request_problems
from harmeval.runner.v1 import runner_pb2


def judge_request(*texts: str) -> judge_pb2.JudgeRequest:
    return judge_pb2.JudgeRequest(
        judge="refusal-matcher",
        prompt=common_pb2.Prompt(text="How?"),
        answers=[judge_pb2.Answer(text=t) for t in texts],
    )


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (judge_request("fine", "a\0b"), "answers[1].text: contains a NUL character"),
        (
            metrics_pb2.GetStudyAnswersRequest(study="\0"),
            "study: contains a NUL character",
        ),
        (
            judge_pb2.ImportJudgmentsRequest(
                judgments=[judge_pb2.ImportedJudgment(annotator="a", value=math.nan)]
            ),
            "judgments[0].value: must be a finite number, not nan",
        ),
        (
            metrics_pb2.ComputeAgreementRequest(
                values=[metrics_pb2.ReliabilityValue(unit="u", coder="c", number=math.inf)]
            ),
            "values[0].number: must be a finite number, not inf",
        ),
        (
            judge_pb2.ImportJudgmentsRequest(
                judgments=[judge_pb2.ImportedJudgment(annotator="a", annotator_kind=7)]
            ),
            "judgments[0].annotator_kind: 7 is not a value of AnnotatorKind",
        ),
        (
            generator_pb2.GenerateRequest(
                model="m", params=common_pb2.GenerationParams(top_p=-math.inf)
            ),
            "params.top_p: must be a finite number, not -inf",
        ),
        (
            runner_pb2.StartRunRequest(
                definition=runner_pb2.StudyDefinition(judges=["ok", "bad\0"])
            ),
            "definition.judges[1]: contains a NUL character",
        ),
    ],
)
def test_a_request_no_rpc_can_take_is_named_by_field_path(message: Message, problem: str) -> None:
    assert request_problems(message) == [problem]


def test_map_keys_and_values_are_checked() -> None:
    score = metrics_pb2.GetHarmMetricScoreResponse(fine_grained={"ok": 1.0, "bad": math.nan})
    assert request_problems(score) == ["fine_grained['bad']: must be a finite number, not nan"]
    score = metrics_pb2.GetHarmMetricScoreResponse(fine_grained={"a\0": 1.0})
    assert request_problems(score) == ["fine_grained key: contains a NUL character"]


def test_well_formed_requests_pass() -> None:
    assert request_problems(judge_request("Sorry, I can't help.", "Step 1: ...")) == []
    values = [
        metrics_pb2.ReliabilityValue(unit=f"u{i}", coder="c", number=-1.5e300) for i in range(100)
    ]
    assert request_problems(metrics_pb2.ComputeAgreementRequest(values=values)) == []
    # 0 is each enum's UNSPECIFIED: absent, not unknown.
    assert request_problems(judge_pb2.ImportedJudgment(annotator_kind=0)) == []


@pytest.mark.parametrize("module", [generator_pb2, judge_pb2, metrics_pb2, runner_pb2])
def test_every_rpc_request_type_can_be_walked(module: Any) -> None:
    for service in module.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            empty = message_factory.GetMessageClass(method.input_type)()
            assert request_problems(empty) == [], method.full_name


def test_every_problem_is_named() -> None:
    assert request_problems(judge_request("a\0", "ok", "b\0")) == [
        "answers[0].text: contains a NUL character",
        "answers[2].text: contains a NUL character",
    ]


def test_bytes_without_a_zero_byte_spare_the_strings_but_not_the_numbers() -> None:
    clean = judge_request("Sorry, I can't help.", "Step 1: ...")
    data = clean.SerializeToString()
    assert b"\x00" not in data and request_problems(clean, data) == []
    dirty = judge_request("a\0b")
    assert request_problems(dirty, dirty.SerializeToString()) == [
        "answers[0].text: contains a NUL character"
    ]
    nan = generator_pb2.GenerateRequest(params=common_pb2.GenerationParams(top_p=math.nan))
    assert request_problems(nan, nan.SerializeToString()) == [
        "params.top_p: must be a finite number, not nan"
    ]
