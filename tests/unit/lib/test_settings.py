from __future__ import annotations

from pathlib import Path

import pytest

from harmeval.settings import SettingsError, describe, load
from harmeval_generator.settings import GeneratorSettings
from harmeval_judge.settings import JudgeSettings


def test_defaults_are_the_documented_local_addresses() -> None:
    g = load(GeneratorSettings, environ={})
    j = load(JudgeSettings, environ={})
    assert (g.generator_address, g.generator_prometheus_port) == ("127.0.0.1:50051", 9451)
    assert (j.judge_address, j.judge_prometheus_port) == ("127.0.0.1:50052", 9452)
    assert g.database_url is None


def test_reads_prefixed_variables_with_types() -> None:
    s = load(
        GeneratorSettings,
        environ={
            "HARMEVAL_GENERATOR_N_CTX": "4096",
            "HARMEVAL_DATA_DIR": "/srv/harmeval",
            "HARMEVAL_DATABASE_URL": "postgresql://u@db/harmeval",
            "HARMEVAL_GRACE_SECONDS": "2.5",
            "GENERATOR_PORT": "tcp://10.0.0.1:50051",  # what Kubernetes injects: ignored
        },
    )
    assert s.generator_n_ctx == 4096 and s.grace_seconds == 2.5
    assert s.data_dir == Path("/srv/harmeval")
    assert s.database_url == "postgresql://u@db/harmeval"


def test_booleans_and_empty_optional() -> None:
    s = load(
        JudgeSettings, environ={"HARMEVAL_JUDGE_LLM_ENABLED": "no", "HARMEVAL_DATABASE_URL": ""}
    )
    assert s.judge_llm_enabled is False and s.database_url is None


@pytest.mark.parametrize(
    ("var", "value"),
    [("HARMEVAL_GENERATOR_N_CTX", "big"), ("HARMEVAL_JUDGE_LLM_ENABLED", "maybe")],
)
def test_malformed_value_names_the_variable(var: str, value: str) -> None:
    cls = GeneratorSettings if "N_CTX" in var else JudgeSettings
    with pytest.raises(SettingsError, match=var):
        load(cls, environ={var: value})


def test_every_variable_is_prefixed() -> None:
    names = [row[0] for row in describe(JudgeSettings)]
    assert names and all(n.startswith("HARMEVAL_") for n in names)
    assert not any(n.endswith(("JUDGE_PORT", "GENERATOR_PORT", "METRICS_PORT")) for n in names)
