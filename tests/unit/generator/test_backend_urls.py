"""The generator's HTTP backends (openai, tgi) call only the URL the models file declares: the
URL is checked, redirects are refused, and the key never shows in an error."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from harmeval.params import GenerationParams
from harmeval.secrets import REDACTED
from harmeval_generator.backends.base import (
    EngineMisconfiguredError,
    EngineUnavailableError,
    ModelPrompt,
    PromptFormat,
    StreamState,
)
from harmeval_generator.backends.openai_compat import OpenAICompatEngine
from harmeval_generator.backends.tgi import TgiEngine
from harmeval_generator.engines import ModelsFileError, _build
from harmeval_generator.settings import GeneratorSettings
from tests.fakes.canary import canary, redirecting
from tests.fakes.openai_server import FakeOpenAI, fake_openai

pytestmark = pytest.mark.filterwarnings("ignore:The `dict` method is deprecated:DeprecationWarning")

PROMPT = ModelPrompt("What is the capital of France?")
PARAMS = GenerationParams(max_tokens=8)


def entry(backend: str, base_url: str, **extra: Any) -> dict[str, Any]:
    model = {"model": "m"} if backend == "openai" else {}
    return {"name": "g", "backend": backend, "base_url": base_url, **model, **extra}


@pytest.mark.parametrize("backend", ["openai", "tgi"])
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/v1", "http://[fe80::1]:8080", "http://metadata/v1"]
)
def test_a_link_local_or_metadata_url_is_refused_unless_allowed(
    tmp_path: Path, backend: str, url: str
) -> None:
    settings = GeneratorSettings(data_dir=tmp_path)
    with pytest.raises(ModelsFileError, match=r"^model 'g': .*allow_link_local: true$"):
        _build(entry(backend, url), settings)
    engine = _build(entry(backend, url, allow_link_local=True), settings)
    assert engine.name == "g"
    with pytest.raises(ModelsFileError, match=r"allow_link_local: expected true or false"):
        _build(entry(backend, url, allow_link_local="yes"), settings)


@pytest.mark.parametrize("backend", ["openai", "tgi"])
def test_credentials_in_the_url_are_refused(tmp_path: Path, backend: str) -> None:
    with pytest.raises(ModelsFileError, match="must not carry credentials"):
        _build(entry(backend, "http://u:p@vllm:8000/v1"), GeneratorSettings(data_dir=tmp_path))


@pytest.mark.parametrize("prompt_format", ["chat", "completion"])
async def test_the_openai_backend_does_not_follow_redirects(prompt_format: PromptFormat) -> None:
    with canary() as bird, redirecting(f"{bird.url}/v1") as hop:
        engine = OpenAICompatEngine(
            "g", f"{hop.url}/v1", "m", prompt_format=prompt_format, max_retries=0
        )
        try:
            with pytest.raises(EngineUnavailableError, match="307"):
                await engine.complete(PROMPT, PARAMS)
        finally:
            await engine.close()
        assert hop.hits == 1
        assert bird.hits == 0


async def test_the_tgi_backend_does_not_follow_redirects() -> None:
    with canary() as bird, redirecting(bird.url) as hop:
        engine = TgiEngine("g", hop.url, timeout_s=5)
        with pytest.raises(EngineUnavailableError, match="answered HTTP 307"):
            await engine.start()
        with pytest.raises(EngineUnavailableError, match="307"):
            await engine.complete(PROMPT, PARAMS)
        with pytest.raises(EngineUnavailableError, match="307"):
            async for _ in engine.stream(PROMPT, PARAMS, StreamState()):
                pass
        assert hop.hits == 3
        assert bird.hits == 0


async def test_the_openai_key_is_registered_and_never_in_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"sk-generator-{uuid.uuid4().hex}"
    monkeypatch.setenv("GEN_KEY", key)
    fakes: list[FakeOpenAI] = []

    def echo(messages: list[dict[str, Any]]) -> tuple[int, str]:
        # The request's headers are recorded before the script runs.
        return 401, f"bad key {fakes[0].headers[-1]['authorization']} " * 40

    with fake_openai(echo) as fake:
        fakes.append(fake)
        engine = _build(
            entry("openai", fake.base_url, api_key_env="GEN_KEY", prompt_format="chat"),
            GeneratorSettings(data_dir=tmp_path),
        )
        try:
            with pytest.raises(EngineMisconfiguredError) as err:
                await engine.complete(PROMPT, PARAMS)
        finally:
            await engine.close()
    assert [h["authorization"] for h in fake.headers] == [f"Bearer {key}"]
    message = str(err.value)
    assert key not in message and REDACTED in message
    assert "more characters cut" in message
