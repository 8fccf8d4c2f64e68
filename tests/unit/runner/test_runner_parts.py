"""The runner's pure parts: settings, job payloads, progress arithmetic, request checks."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from harmeval.common.v1 import common_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval.runner.v1 import runner_pb2
from harmeval.settings import SettingsError
from harmeval_runner.queue import (
    GenerateJob,
    JudgeJob,
    QueuedJob,
    generate_job,
    judge_entrypoint,
    judge_job,
)
from harmeval_runner.service import definition_problems, progress
from harmeval_runner.settings import RunnerSettings
from harmeval_runner.store import RunRow, Tally


def test_judge_limits_parse_and_refuse_mistakes() -> None:
    limits = RunnerSettings(runner_judge_limits=" gpt-4o=32, panel=a=4 ,").judge_limits()
    assert limits == {"gpt-4o": 32, "panel=a": 4}
    for bad in ("gpt-4o", "gpt-4o=0", "=3", "x=-1", "x=two"):
        with pytest.raises(SettingsError, match="HARMEVAL_RUNNER_JUDGE_LIMITS"):
            RunnerSettings(runner_judge_limits=bad)
    for field, value in (
        ("runner_chunk_size", 0),
        ("runner_generate_jobs", 0),
        ("runner_worker_jobs", 1),
        ("runner_heartbeat_timeout_s", 0.0),
    ):
        with pytest.raises(SettingsError, match=f"HARMEVAL_{field.upper()}"):
            RunnerSettings(**{field: value})


def test_job_payloads_round_trip_and_dedupe_per_chunk() -> None:
    g = GenerateJob(run="r", attempt=2, first=16, count=8)
    j = JudgeJob(run="r", attempt=2, first=16, count=2, judge="llm", answers=[[(1, "a")], []])
    assert generate_job(json.dumps(asdict(g)).encode()) == g
    assert judge_job(json.dumps(asdict(j)).encode()) == j
    assert QueuedJob("judge", j).dedupe_key == "r/2/judge/llm/16"
    assert QueuedJob("generate", g).dedupe_key == "r/2/generate//16"
    assert judge_entrypoint("llm", {"llm"}) == "judge:llm"
    assert judge_entrypoint("other", {"llm"}) == "judge"


def run_row(**changes: object) -> RunRow:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    values: dict[str, object] = dict(
        id=uuid.uuid4(),
        study="s",
        state="RUNNING",
        attempt=1,
        models=[
            {"name": "a", "model": "m", "params": {}},
            {"name": "b", "model": "m", "params": {}},
        ],
        judges=["j"],
        rejudge_unscorable=False,
        n_prompts=10,
        chunk_size=4,
        error="",
        last_errors=["x"],
        created_at=started,
        started_at=started,
        updated_at=started,
        ended_at=None,
    )
    values.update(changes)
    return RunRow(**values)  # type: ignore[arg-type]


def test_progress_counts_rate_and_time_left() -> None:
    run = run_row()
    assert run.n_chunks == 3 and run.expected_results == 9
    now = run.started_at + timedelta(seconds=10)
    p = progress(
        run,
        [
            Tally(stage="generate", subject="a", done=10, cached=4),
            Tally(stage="judge", subject="j", done=5, unscorable=1, failed=1),
        ],
        now.timestamp(),
    )
    rows = {(s.stage, s.subject): (s.total, s.done, s.failed) for s in p.stages}
    assert rows == {
        (runner_pb2.STAGE_GENERATE, "a"): (10, 10, 0),
        (runner_pb2.STAGE_GENERATE, "b"): (10, 0, 0),  # nothing yet: shown with zeros
        (runner_pb2.STAGE_JUDGE, "j"): (20, 5, 1),  # one verdict per answer: 10 prompts x 2
    }
    # 16 of 40 items in 10 s: 1.6/s, 24 left.
    assert p.items_per_second == pytest.approx(1.6)
    assert p.eta_seconds == pytest.approx(15.0)
    assert list(p.last_errors) == ["x"]
    done = run_row(state="SUCCEEDED", ended_at=now)
    assert progress(done, [], (now + timedelta(hours=1)).timestamp()).eta_seconds == 0.0


def test_definition_problems_name_each_field() -> None:
    good = runner_pb2.StudyDefinition(
        name="s",
        prompts=[common_pb2.Prompt(text="p")],
        models=[
            metrics_pb2.StudyModel(
                name="a", model="m", params=common_pb2.GenerationParams(max_tokens=8, top_p=1.0)
            )
        ],
        judges=["j"],
        judge_definitions=['{"name": "j", "family": "refusal"}'],
    )
    assert definition_problems(good) == []
    bad = runner_pb2.StudyDefinition()
    bad.CopyFrom(good)
    bad.name = "s\x00"
    bad.models.append(bad.models[0])
    bad.judges.append("j")
    bad.judge_definitions[:] = ["not json", '{"name": "other"}']
    problems = " | ".join(definition_problems(bad))
    for expected in (
        "definition.models: names must be unique",
        "definition.judges: names must be unique",
        "judge_definitions[0]: not JSON",
        "judge_definitions[1]: expected a JSON object whose name is one of the study's judges",
        "definition.name",
    ):
        assert expected in problems


def test_a_judge_defined_twice_is_refused_before_any_is_defined() -> None:
    d = runner_pb2.StudyDefinition(
        name="s",
        prompts=[common_pb2.Prompt(text="How?")],
        models=[metrics_pb2.StudyModel(name="a", model="m")],
        judges=["j"],
        judge_definitions=['{"name": "j", "family": "refusal-matcher"}'] * 2,
    )
    assert definition_problems(d) == [
        "definition.judge_definitions[1]: defines 'j' again (judge_definitions[0])"
    ]
