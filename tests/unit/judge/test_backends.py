"""Declared backends: the file the operator writes, `default` from the settings, and judge
definitions that name a backend (never a URL or a key)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from harmeval.secrets import REDACTED, redact
from harmeval_judge.backends import (
    DEFAULT_BACKEND,
    NO_KEY,
    BackendsError,
    load_backends,
    read_backends_file,
)
from harmeval_judge.definitions import DefinitionError, JudgeRegistry
from harmeval_judge.families.llama_guard import LlamaGuardJudge
from harmeval_judge.families.llm import LlmPointwiseJudge
from harmeval_judge.settings import JudgeSettings


def write(tmp_path: Path, text: str, name: str = "backends.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_declares_backends_with_keys_from_files_and_the_environment(
    tmp_path: Path,
) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "openai").write_text("  sk-from-a-secret-file\n", encoding="utf-8")
    path = write(
        tmp_path,
        "backends:\n"
        "  - {name: openai, base_url: 'https://api.openai.com/v1', api_key_file: keys/openai}\n"
        "  - {name: guard, base_url: 'http://vllm-guard:8000/v1', api_key_env: GUARD_KEY,\n"
        "     transport: aiohttp}\n"
        "  - {name: local, base_url: 'http://127.0.0.1:8000/v1'}\n"
        "  - {name: node, base_url: 'http://169.254.20.10:8000/v1', allow_link_local: true}\n",
    )
    found = read_backends_file(path, {"GUARD_KEY": "sk-guard-from-env "})
    assert list(found) == ["openai", "guard", "local", "node"]
    assert found["openai"].api_key == "sk-from-a-secret-file"  # read relative to the file
    assert found["guard"].api_key == "sk-guard-from-env"
    assert found["guard"].transport == "aiohttp" and found["openai"].transport is None
    assert found["local"].api_key == NO_KEY
    assert found["node"].allow_link_local
    # The key is no part of what a backend shows.
    assert "sk-from-a-secret-file" not in repr(found["openai"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("backends: []", r": expected 'backends:' with a non-empty list$"),
        ("judges: []", r": expected 'backends:' with a non-empty list$"),
        (
            "backends: [{name: a, base_url: 'http://a'}]\nextra: 1",
            r": unknown key\(s\) \['extra'\]; expected only 'backends'$",
        ),
        ("backends: [just-a-string]", r": backends\[0\]: expected a mapping$"),
        ("backends: [{base_url: 'http://a'}]", r": backends\[0\]\.name: expected a name of"),
        ("backends: [{name: 'Big Name', base_url: 'http://a'}]", r": backends\[0\]\.name:"),
        ("backends: [{name: a}]", r": backend 'a'\.base_url: required$"),
        ("backends: [{name: a, base_url: 8080}]", r": backend 'a'\.base_url: expected a non-"),
        (
            "backends: [{name: a, base_url: 'http://a', api_key: sk-inline}]",
            r": backend 'a': unknown field\(s\) \['api_key'\]; expected some of \('name', "
            r"'base_url', 'api_key_file', 'api_key_env', 'transport', 'allow_link_local'\)$",
        ),
        (
            "backends: [{name: a, base_url: 'http://a', api_key_file: k, api_key_env: K}]",
            r": backend 'a': give api_key_file or api_key_env, not both$",
        ),
        (
            "backends: [{name: a, base_url: 'http://a', api_key_file: missing-key}]",
            r": backend 'a'\.api_key_file: cannot read .*missing-key",
        ),
        (
            "backends: [{name: a, base_url: 'http://a', api_key_file: empty-key}]",
            r": backend 'a'\.api_key_file: .*empty-key is empty$",
        ),
        (
            "backends: [{name: a, base_url: 'http://a', api_key_env: HARMEVAL_NO_SUCH_VAR}]",
            r": backend 'a'\.api_key_env: HARMEVAL_NO_SUCH_VAR is not set in the environment$",
        ),
        (
            "backends: [{name: a, base_url: 'http://a', transport: pigeon}]",
            r": backend 'a'\.transport: expected one of \['openai-sdk', 'aiohttp'\]$",
        ),
        (
            "backends: [{name: a, base_url: 'http://a', allow_link_local: 'yes'}]",
            r": backend 'a'\.allow_link_local: expected true or false$",
        ),
        (
            "backends: [{name: a, base_url: 'http://169.254.169.254/v1'}]",
            r": backend 'a'\.base_url: .*169\.254\.169\.254 is a cloud metadata service, .*"
            r"refused unless the backend's declaration says allow_link_local: true$",
        ),
        (
            "backends: [{name: a, base_url: 'http://[fe80::2]:8000/v1'}]",
            r": backend 'a'\.base_url: .*fe80::2 is a link-local address",
        ),
        (
            "backends: [{name: a, base_url: 'http://metadata.google.internal/v1'}]",
            r": backend 'a'\.base_url: .*a cloud metadata service",
        ),
        (
            "backends: [{name: a, base_url: 'file:///etc/passwd'}]",
            r": backend 'a'\.base_url: .*the scheme must be http or https",
        ),
        (
            "backends: [{name: a, base_url: 'http://u:p@a/v1'}]",
            r": backend 'a'\.base_url: the URL must not carry credentials",
        ),
        (
            "backends: [{name: a, base_url: 'http://a'}, {name: a, base_url: 'http://b'}]",
            r": backends\[1\]\.name: 'a' declared twice$",
        ),
        ("backends: [{name: a, base_url: 'http://a'", r"backends\.yaml: while parsing"),
    ],
)
def test_mistakes_name_the_file_the_backend_and_the_field(
    tmp_path: Path, body: str, message: str
) -> None:
    (tmp_path / "empty-key").write_text(" \n", encoding="utf-8")
    path = write(tmp_path, body)
    with pytest.raises(BackendsError) as err:
        read_backends_file(path, {})
    assert str(err.value).startswith(str(path))
    assert re.search(message, str(err.value)), str(err.value)


def test_the_settings_declare_default_and_the_file_may_replace_it(tmp_path: Path) -> None:
    settings = JudgeSettings(judge_llm_base_url="http://judge-llm:8000/v1")
    only = load_backends(settings)
    assert list(only) == [DEFAULT_BACKEND]
    assert only[DEFAULT_BACKEND].base_url == "http://judge-llm:8000/v1"
    path = write(tmp_path, "backends: [{name: default, base_url: 'http://other:8000/v1'}]")
    replaced = load_backends(
        JudgeSettings(judge_llm_base_url="http://169.254.169.254/", judge_backends_file=path)
    )
    assert replaced[DEFAULT_BACKEND].base_url == "http://other:8000/v1"


def test_a_link_local_llm_base_url_setting_fails_at_start_up() -> None:
    with pytest.raises(BackendsError, match=r"^HARMEVAL_JUDGE_LLM_BASE_URL: .*metadata service"):
        JudgeRegistry(JudgeSettings(judge_llm_base_url="http://169.254.169.254/latest"))


def test_every_key_loaded_is_registered_as_a_secret(tmp_path: Path) -> None:
    from_settings, from_file = (f"sk-{uuid.uuid4().hex}" for _ in range(2))
    (tmp_path / "key").write_text(from_file, encoding="utf-8")
    path = write(tmp_path, "backends: [{name: a, base_url: 'http://a/v1', api_key_file: key}]")
    load_backends(JudgeSettings(judge_llm_api_key=from_settings, judge_backends_file=path))
    assert redact(f"{from_settings} {from_file}") == f"{REDACTED} {REDACTED}"
    # The placeholder of a backend without a key is no secret.
    assert redact(NO_KEY) == NO_KEY


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[JudgeRegistry]:
    path = write(
        tmp_path,
        "backends:\n"
        "  - {name: openai, base_url: 'https://api.openai.com/v1', api_key_env: K}\n"
        "  - {name: guard, base_url: 'http://vllm-guard:8000/v1', transport: aiohttp}\n",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("K", "sk-openai-key-for-tests")
        r = JudgeRegistry(
            JudgeSettings(judge_llm_enabled=False, judge_backends_file=path, judge_llm_api_key="")
        )
    yield r
    await r.close()


async def test_definitions_name_backends_and_share_their_endpoints(
    registry: JudgeRegistry,
) -> None:
    one = registry.build({"name": "a", "family": "llm", "protocol": "binary", "backend": "openai"})
    two = registry.build({"name": "b", "family": "llm", "protocol": "likert", "backend": "openai"})
    guard = registry.build({"name": "g", "family": "llama-guard", "backend": "guard"})
    default = registry.build({"name": "d", "family": "llm", "protocol": "binary"})
    assert isinstance(one, LlmPointwiseJudge) and isinstance(two, LlmPointwiseJudge)
    assert isinstance(guard, LlamaGuardJudge) and isinstance(default, LlmPointwiseJudge)
    assert one.llm.endpoint is two.llm.endpoint
    assert one.llm.endpoint.base_url == "https://api.openai.com/v1"
    assert guard.llm.endpoint.transport == "aiohttp"  # the backend's transport
    assert default.llm.endpoint.base_url == registry.settings.judge_llm_base_url
    # The stored configuration names the backend; no URL, no key.
    for judge, backend in ((one, "openai"), (guard, "guard"), (default, "default")):
        config = judge.config()
        assert config["backend"] == backend
        assert "base_url" not in config
        assert not any("sk-" in v or "://" in v for v in config.values())


@pytest.mark.parametrize("field", ["base_url", "api_key_env", "api_key", "api_key_file"])
@pytest.mark.parametrize("family", ["llm", "llama-guard", "refusal-matcher", "panel"])
async def test_no_definition_carries_a_url_or_a_key(
    registry: JudgeRegistry, field: str, family: str
) -> None:
    definition: dict[str, Any] = {"name": "x", "family": family, field: "http://canary/v1"}
    with pytest.raises(DefinitionError) as err:
        registry.build(definition)
    assert str(err.value) == (
        f"judge 'x'.{field}: a definition carries no URL or key; the operator declares the "
        "backend (URL and key) in HARMEVAL_JUDGE_BACKENDS_FILE and the definition names it: "
        "backend: <name>"
    )


async def test_an_unknown_backend_lists_the_declared_ones(registry: JudgeRegistry) -> None:
    with pytest.raises(DefinitionError) as err:
        registry.build({"name": "x", "family": "llm", "backend": "attacker"})
    assert str(err.value) == (
        "judge 'x'.backend: unknown backend 'attacker'; declared: ['default', 'guard', "
        "'openai'] (the operator declares backends in HARMEVAL_JUDGE_BACKENDS_FILE)"
    )


async def test_a_judges_file_with_a_url_fails_at_start_up(tmp_path: Path) -> None:
    judges = write(
        tmp_path, "judges: [{name: j, family: llm, base_url: 'http://x/v1'}]", "judges.yaml"
    )
    with pytest.raises(DefinitionError, match=r"^judge 'j'\.base_url: a definition carries no"):
        JudgeRegistry(JudgeSettings(judge_judges_file=judges)).add_builtin()


async def test_the_built_in_judges_are_the_ones_added_at_start_up(tmp_path: Path) -> None:
    judges = write(tmp_path, "judges: [{name: mine, family: refusal-matcher}]", "judges.yaml")
    r = JudgeRegistry(JudgeSettings(judge_judges_file=judges, judge_llm_name="the-llm"))
    r.add_builtin()
    try:
        assert {"refusal-matcher", "profanity-classifier", "the-llm", "mine"} <= r.builtin
        assert r.builtin == frozenset(r.judges)
    finally:
        await r.close()


def test_a_definition_sent_over_the_api_cannot_be_a_yaml_bomb_or_nested_too_deep() -> None:
    from harmeval_judge.definitions import parse_definition

    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
    for text, why in [
        (bomb, "aliases"),
        ("x: " + "[" * 3000 + "]" * 3000, "nested too deeply"),
        ("name: " + "n" * 70_000, "at most 64,000"),
    ]:
        with pytest.raises(DefinitionError, match=why):
            parse_definition(text)
    assert parse_definition('{"name": "a", "family": "llm"}') == {"name": "a", "family": "llm"}


def test_numbers_and_text_of_a_definition_are_checked() -> None:
    from harmeval_judge.definitions import parse_definition

    registry = JudgeRegistry(JudgeSettings())
    for bad, why in [
        ({"metric": "rouge1-recall", "threshold": float("nan")}, "finite number"),
        ({"metric": "rouge1-recall", "threshold": -0.5}, "at least 0"),
    ]:
        with pytest.raises(DefinitionError, match=why):
            registry.build({"name": "t", "family": "reference-metric", **bad})
    with pytest.raises(DefinitionError, match="at least 0"):
        registry.build({"name": "t", "family": "llm", "protocol": "binary", "max_tokens": -5})
    with pytest.raises(DefinitionError, match="NUL"):
        parse_definition('{"name": "t", "family": "llm", "model": "a\\u0000b"}')
