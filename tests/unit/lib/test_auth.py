"""Pieces of the access interceptor: certificate roles, the study an audit line names, and
that every RPC of every service has a rule."""

from __future__ import annotations

import pytest

from harmeval.access import rules_of
from harmeval.auth import _study_of, parse_cert_roles
from harmeval.generator.v1 import generator_pb2
from harmeval.judge.v1 import judge_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval.runner.v1 import runner_pb2
from harmeval.settings import SettingsError


def test_cert_roles() -> None:
    assert parse_cert_roles(" runner=operator, grafana = viewer ,") == {
        "runner": "operator",
        "grafana": "viewer",
    }
    for bad in ("runner", "runner=admin", "=viewer"):
        with pytest.raises(SettingsError, match="HARMEVAL_AUTH_CERT_ROLES"):
            parse_cert_roles(bad)


def test_the_study_an_audit_line_names() -> None:
    assert _study_of(metrics_pb2.GetStudyAnswersRequest(study="s1")) == "s1"
    assert _study_of(metrics_pb2.GetStudyRequest(name="s2")) == "s2"
    assert _study_of(generator_pb2.GenerateRequest(model="m")) == ""


def test_every_rpc_has_a_rule_and_raw_text_rpcs_need_more_than_a_viewer() -> None:
    for module, name in [
        (generator_pb2, "GeneratorService"),
        (judge_pb2, "JudgeService"),
        (metrics_pb2, "MetricsService"),
        (runner_pb2, "RunnerService"),
    ]:
        service = module.DESCRIPTOR.services_by_name[name]
        rules = rules_of(service)
        assert len(rules) == len(service.methods)
        assert all(r.role != "viewer" for r in rules.values() if r.raw_text)
