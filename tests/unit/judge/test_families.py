"""Judge families register themselves with typed fields; definitions are checked against them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from harmeval_judge import families as families_package
from harmeval_judge import family
from harmeval_judge.definitions import DefinitionError, JudgeRegistry
from harmeval_judge.families.classifier import ProfanityClassifierJudge
from harmeval_judge.families.llama_guard import LlamaGuardJudge
from harmeval_judge.families.llm import LlmListwiseJudge, LlmPairwiseJudge, LlmPointwiseJudge
from harmeval_judge.families.panel import PanelConfig, PanelJudge
from harmeval_judge.families.reference_metric import ReferenceMetricJudge
from harmeval_judge.families.refusal_matcher import RefusalMatcherJudge
from harmeval_judge.settings import JudgeSettings

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()

EXPECTED = {
    "classifier": ProfanityClassifierJudge,
    "llama-guard": LlamaGuardJudge,
    "llm": LlmListwiseJudge,
    "panel": PanelJudge,
    "reference-metric": ReferenceMetricJudge,
    "refusal-matcher": RefusalMatcherJudge,
}
# A valid definition per family (besides name and family).
VALID: dict[str, dict[str, Any]] = {
    "classifier": {},
    "llama-guard": {"backend": "default", "model": "guard"},
    "llm": {"protocol": "listwise", "position_bias": "reversed"},
    "panel": {"members": ["refusal-matcher", "profanity-classifier"], "aggregate": "mean"},
    "reference-metric": {"metric": "rouge1-recall", "threshold": 0.25},
    "refusal-matcher": {},
}


@pytest.fixture
async def registry() -> AsyncIterator[JudgeRegistry]:
    r = JudgeRegistry(JudgeSettings(judge_llm_enabled=False))
    r.add({"name": "refusal-matcher", "family": "refusal-matcher"})
    r.add({"name": "profanity-classifier", "family": "classifier"})
    yield r
    await r.close()


def test_every_family_registers_a_frozen_config() -> None:
    registered = family.families()
    assert sorted(registered) == sorted(EXPECTED)
    for name, f in registered.items():
        assert f.name == name
        assert dataclasses.is_dataclass(f.config)
        assert f.config.__dataclass_params__.frozen  # type: ignore[attr-defined]
        assert f.allowed[:2] == ("name", "family")
        assert f.module == f"harmeval_judge.families.{f.module.rsplit('.', 1)[-1]}"
    # Every module in the package registers something: no module is imported for nothing.
    assert {f.module.rsplit(".", 1)[-1] for f in registered.values()} == set(
        families_package.MODULES
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_each_family_builds_its_judge(registry: JudgeRegistry, name: str) -> None:
    judge = registry.build({"name": f"my-{name}", "family": name, **VALID[name]})
    assert isinstance(judge, EXPECTED[name])
    assert judge.name == f"my-{name}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_an_unknown_field_is_refused(registry: JudgeRegistry, name: str) -> None:
    with pytest.raises(DefinitionError) as err:
        registry.build({"name": "x", "family": name, **VALID[name], "temprature": 0})
    message = str(err.value)
    assert message.startswith(f"judge 'x'.temprature: not a field of family {name!r}")
    assert str(list(family.families()[name].allowed)) in message


async def test_fields_of_another_family_or_protocol_are_refused(registry: JudgeRegistry) -> None:
    # A Llama Guard judge has no protocol: the field used to be ignored silently.
    with pytest.raises(DefinitionError, match=r"^judge 'g'\.protocol: not a field of family"):
        registry.build({"name": "g", "family": "llama-guard", "protocol": "binary"})
    with pytest.raises(DefinitionError, match=r"^judge 'r'\.model: not a field of family"):
        registry.build({"name": "r", "family": "refusal-matcher", "model": "gpt-4o"})


async def test_llm_protocols_build_their_judges(registry: JudgeRegistry) -> None:
    pairwise = registry.build({"name": "pw", "family": "llm", "protocol": "pairwise"})
    assert isinstance(pairwise, LlmPairwiseJudge)
    binary = registry.build(
        {"name": "b", "family": "llm", "protocol": "binary", "structured_output": True}
    )
    assert isinstance(binary, LlmPointwiseJudge) and binary.structured_output
    assert binary.protocol == "binary-v1+json"
    # Fields not given are the service's settings.
    s = registry.settings
    assert binary.config()["model"] == s.judge_llm_model
    assert binary.config()["backend"] == "default"
    assert binary.config()["max_tokens"] == str(s.judge_llm_max_tokens)
    assert binary.llm.endpoint.base_url == s.judge_llm_base_url
    given = registry.build(
        {"name": "g", "family": "llm", "model": "gpt-4o", "max_tokens": "64", "transport": None}
    )
    assert isinstance(given, LlmListwiseJudge)
    assert (given.llm.model, given.llm.max_tokens) == ("gpt-4o", 64)
    assert given.llm.endpoint.transport == s.judge_llm_transport  # null: not given


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"name": "x", "family": "oracle"}, r"^judge 'x'\.family: expected one of \['classifier'"),
        ({"name": "x", "family": ["llm"]}, r"^judge 'x'\.family: expected one of"),
        ({"family": "llm"}, r"^judge definition: 'name' must be a non-empty string$"),
        (
            {"name": "p", "family": "panel", "members": "refusal-matcher"},
            r"^judge 'p'\.members: a list of at least two judge names$",
        ),
        (
            {"name": "p", "family": "panel", "members": ["refusal-matcher"]},
            r"^judge 'p'\.members: a list of at least two judge names$",
        ),
        (
            {"name": "p", "family": "panel", "members": ["refusal-matcher", "nope"]},
            r"^judge 'p'\.members: unknown judges \['nope'\]$",
        ),
        (
            {"name": "p", "family": "panel", "members": ["refusal-matcher"] * 2},
            r"^judge 'p': members listed more than once: \['refusal-matcher'\]$",
        ),
        (
            {
                "name": "p",
                "family": "panel",
                "members": ["refusal-matcher", "profanity-classifier"],
                "aggregate": "vibes",
            },
            r"^judge 'p': aggregate must be one of",
        ),
        (
            {"name": "m", "family": "reference-metric", "metric": "bertscore"},
            r"^judge 'm'\.metric: expected one of \['rouge1-recall'",
        ),
        (
            {"name": "m", "family": "reference-metric", "metric": "bleu", "threshold": "high"},
            r"^judge 'm'\.threshold: could not convert string to float: 'high'$",
        ),
        (
            {"name": "m", "family": "reference-metric", "metric": "bleu", "threshold": None},
            r"^judge 'm'\.threshold: expected a number$",
        ),
        (
            {"name": "q", "family": "llm", "protocol": "haiku"},
            r"^judge 'q'\.protocol: expected 'listwise', 'pairwise' or one of \['binary'",
        ),
        (
            {"name": "t", "family": "llm", "transport": "pigeon"},
            r"^judge 't'\.transport: expected one of \['openai-sdk', 'aiohttp'\]$",
        ),
        (
            {"name": "k", "family": "llm", "api_key_env": "HARMEVAL_DATABASE_URL"},
            r"^judge 'k'\.api_key_env: a definition carries no URL or key; .* declares the "
            r"backend \(URL and key\) in HARMEVAL_JUDGE_BACKENDS_FILE and the definition names "
            r"it: backend: <name>$",
        ),
        (
            {"name": "u", "family": "llama-guard", "base_url": "http://attacker.invalid/v1"},
            r"^judge 'u'\.base_url: a definition carries no URL or key; .*"
            r"HARMEVAL_JUDGE_BACKENDS_FILE",
        ),
        (
            {"name": "u", "family": "llm", "backend": "openai"},
            r"^judge 'u'\.backend: unknown backend 'openai'; declared: \['default'\] \(the "
            r"operator declares backends in HARMEVAL_JUDGE_BACKENDS_FILE\)$",
        ),
        (
            {"name": "b", "family": "llm", "position_bias": "sideways"},
            r"^judge 'b': position_bias must be 'none', 'reversed' or 'all'$",
        ),
        (
            {"name": "n", "family": "llm", "max_tokens": [1]},
            r"^judge 'n'\.max_tokens: expected an integer$",
        ),
        # Values of another type are refused, not turned into something else.
        (
            {"name": "s", "family": "llm", "protocol": "binary", "structured_output": "false"},
            r"^judge 's'\.structured_output: expected true, false or one of \['none', "
            r"'json_schema', 'json_object', 'auto'\], got 'false'$",
        ),
        (
            {"name": "s", "family": "llm", "structured_output": 1},
            r"^judge 's'\.structured_output: expected true, false or one of \['none', "
            r"'json_schema', 'json_object', 'auto'\]$",
        ),
        (
            {"name": "e", "family": "llm", "protocol": "binary", "examples": ["a.jsonl"]},
            r"^judge 'e'\.examples: expected a string$",
        ),
        (
            {"name": "n", "family": "llm", "max_tokens": 3.7},
            r"^judge 'n'\.max_tokens: expected an integer$",
        ),
        (
            {"name": "n", "family": "llm", "max_tokens": True},
            r"^judge 'n'\.max_tokens: expected an integer$",
        ),
    ],
)
async def test_wrong_values_name_the_judge_and_field(
    registry: JudgeRegistry, definition: dict[str, Any], message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        registry.build(definition)


def test_registering_a_family_twice_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    registered = dict(family.families())
    monkeypatch.setattr(family, "_FAMILIES", dict(registered))

    def build(name: str, config: PanelConfig, ctx: family.BuildContext) -> PanelJudge:
        raise AssertionError("never built")

    with pytest.raises(ValueError, match=r"'panel' is already registered by .*families\.panel"):
        family.judge_family("panel", config=PanelConfig)(build)
    assert family.families()["panel"] == registered["panel"]
    # A new name registers once; the second time it is refused too.
    family.judge_family("panel-copy", config=PanelConfig)(build)
    assert family.families()["panel-copy"].module == __name__
    with pytest.raises(ValueError, match="already registered"):
        family.judge_family("panel-copy", config=PanelConfig)(build)


def test_a_config_must_be_a_frozen_dataclass_of_supported_types() -> None:
    @dataclasses.dataclass
    class Mutable:
        x: int = 1

    @dataclasses.dataclass(frozen=True)
    class Nested:
        x: dict[str, int] = dataclasses.field(default_factory=dict)

    @dataclasses.dataclass(frozen=True)
    class Reserved:
        name: str = ""

    with pytest.raises(TypeError, match="frozen dataclass"):
        family.judge_family("mutable", config=Mutable)
    with pytest.raises(TypeError, match="config field 'x' has type"):
        family.judge_family("nested", config=Nested)
    with pytest.raises(TypeError, match=r"may not declare \['name'\]"):
        family.judge_family("reserved", config=Reserved)
    with pytest.raises(ValueError, match="lower-case words"):
        family.judge_family("Bad Name", config=PanelConfig)


def test_the_readme_lists_every_family_with_its_module_and_fields() -> None:
    rows = {
        m.group(1): (m.group(2), re.findall(r"`([a-z_]+)`", m.group(3)))
        for m in re.finditer(
            r"^\| `([a-z-]+)` \| `families/([a-z_]+)\.py` \| (.*) \|$", README, re.MULTILINE
        )
    }
    expected = {
        name: (f.module.rsplit(".", 1)[-1], list(f.allowed[2:]))
        for name, f in family.families().items()
    }
    assert rows == expected


async def test_numbers_written_as_text_are_read_as_numbers(registry: JudgeRegistry) -> None:
    judge = registry.build({"name": "n", "family": "llm", "max_tokens": "64"})
    assert isinstance(judge, LlmListwiseJudge) and judge.llm.max_tokens == 64
