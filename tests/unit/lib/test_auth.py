"""Pieces of the access interceptor: certificate roles, the study an audit line names, and
that every RPC of every service has a rule."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from harmeval.access import AccessRuleError, rules_of
from harmeval.auth import _study_of, parse_cert_roles
from harmeval.common.v1 import access_pb2
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
    # The runner names the study of the generations and verdicts it asks for.
    metadata = [("authorization", "x"), ("x-harmeval-study", "order%2Fa%20b")]
    assert _study_of(judge_pb2.JudgeBatchRequest(judge="j"), metadata) == "order/a b"


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


# Pinned here, not derived from the protos: a rule loosened by mistake fails this test.
EXPECTED_ROLES = {
    "GeneratorService": {
        "Generate": ("analyst", True),
        "GenerateBatch": ("analyst", True),
        "GenerateStream": ("analyst", True),
        "ListModels": ("viewer", False),
        "ImportGenerations": ("operator", False),
    },
    "JudgeService": {
        "Judge": ("analyst", True),
        "JudgeBatch": ("analyst", True),
        "ListJudges": ("viewer", False),
        "DefineJudge": ("operator", False),
        "ImportJudgments": ("operator", False),
    },
    "MetricsService": {
        "RegisterStudy": ("operator", False),
        "GetStudy": ("analyst", True),
        "GetAgreement": ("viewer", False),
        "GetModelRanking": ("viewer", False),
        "ComputeAgreement": ("viewer", False),
        "ImportStudy": ("operator", False),
        "ImportAnnotations": ("annotator", False),
        "GetStudyAnswers": ("analyst", True),
        "GetDisagreements": ("analyst", True),
        "GetHarmMetricScore": ("viewer", False),
        "PlanLabelling": ("operator", False),
        "GetLabellingProgress": ("viewer", False),
    },
    "RunnerService": {
        "StartRun": ("operator", False),
        "GetRun": ("viewer", False),
        "ListRuns": ("viewer", False),
        "CancelRun": ("operator", False),
        "WatchRun": ("viewer", False),
    },
}


def test_the_rules_are_the_designed_ones() -> None:
    modules = [generator_pb2, judge_pb2, metrics_pb2, runner_pb2]
    for module, (service_name, expected) in zip(modules, EXPECTED_ROLES.items(), strict=True):
        service = module.DESCRIPTOR.services_by_name[service_name]
        rules = {
            path.rsplit("/", 1)[1]: (rule.role, rule.raw_text)
            for path, rule in rules_of(service).items()
        }
        assert rules == expected, service_name


def test_a_rule_naming_no_role_refuses_to_start() -> None:
    file = descriptor_pb2.FileDescriptorProto(
        name="tests/unruly.proto", package="unruly", syntax="proto3"
    )
    file.message_type.add(name="Empty")
    method = file.service.add(name="Unruly").method.add(
        name="Call", input_type=".unruly.Empty", output_type=".unruly.Empty"
    )
    method.options.Extensions[access_pb2.access].raw_text = True  # role left unspecified
    pool = descriptor_pool.Default()  # where the options' extension is known
    pool.Add(file)
    service = pool.FindServiceByName("unruly.Unruly")
    with pytest.raises(AccessRuleError, match=r"unruly\.Unruly\.Call: access rule names no"):
        rules_of(service)
