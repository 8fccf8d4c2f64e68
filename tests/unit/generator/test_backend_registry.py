"""Backends register themselves with a typed config; the models file is read against it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harmeval.params import GenerationParams
from harmeval_generator.backends.base import (
    Completion,
    Engine,
    ModelPrompt,
    StreamState,
)
from harmeval_generator.backends.openai_compat import OpenAICompatEngine
from harmeval_generator.backends.registry import (
    PACKAGE,
    backend_modules,
    backends,
    register_backend,
    unregister_backend,
)
from harmeval_generator.backends.tgi import MISSING_CLIENT, TgiEngine
from harmeval_generator.engines import ModelsFileError, _build, _entries, open_engines
from harmeval_generator.settings import GeneratorSettings
from tests.conftest import ROOT
from tests.fakes.scripted_engine import SCRIPTED, ScriptedEngine

# The service's own backends (tests register more, e.g. "scripted").
SHIPPED = {"llama.cpp", "vllm", "tgi", "openai"}


def shipped() -> dict[str, Any]:
    return {n: b for n, b in backends().items() if b.module.startswith(f"{PACKAGE}.")}


def test_every_backend_module_is_discovered_and_registers() -> None:
    assert set(shipped()) == SHIPPED
    modules = {b.module.rsplit(".", 1)[1] for b in shipped().values()}
    assert modules == {"llamacpp", "vllm", "tgi", "openai_compat"}
    assert modules <= set(backend_modules())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_registered_backend_has_a_config(name: str) -> None:
    backend = backends()[name]
    params = backend.config.__dataclass_params__
    assert dataclasses.is_dataclass(backend.config) and params.frozen
    assert all(f.kw_only for f in dataclasses.fields(backend.config))
    assert backend.field_names and not {"name", "backend"} & set(backend.field_names)
    # Every optional field has a default: an entry of only the required fields builds a config.
    required = {f.name for f in backend.fields if f.required}
    config = backend.config(**{f: "x" for f in required})
    assert {f.name for f in dataclasses.fields(config)} == set(backend.field_names)


def test_looking_backends_up_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from harmeval_generator.engines import _entries\n"
        "from harmeval_generator.backends.registry import backends\n"
        "assert len(backends()) >= 4\n"
        "heavy = ['vllm', 'torch', 'text_generation', 'openai', 'llama_cpp', 'aiohttp']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def write(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text("models:\n" + "".join(f"  - {e}\n" for e in entries))
    return path


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_an_unknown_field_is_refused_for_every_backend(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelsFileError) as err:
        _entries(write(tmp_path, f"{{name: g, backend: '{name}', bogus: 1}}"))
    allowed = sorted(backends()[name].field_names)
    assert str(err.value).endswith(
        f"models[0]: unknown field(s) ['bogus'] for {name}; expected some of {allowed}"
    )


def test_registering_a_name_twice_fails() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Config:
        base_url: str

    with pytest.raises(ValueError, match=r"'tgi' is already registered by .*backends\.tgi"):
        register_backend("tgi", config=Config)(lambda name, config, settings: None)  # type: ignore[arg-type,return-value]
    assert backends()["tgi"].module == f"{PACKAGE}.tgi"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (dataclass(kw_only=True)(type("Mutable", (), {"__annotations__": {"x": "int"}})), "frozen"),
        (
            dataclass(frozen=True)(type("Named", (), {"__annotations__": {"name": "str"}})),
            "may not declare ['name']",
        ),
        (
            dataclass(frozen=True)(type("Listy", (), {"__annotations__": {"x": "list[int]"}})),
            "config field 'x' has type",
        ),
    ],
)
def test_a_config_must_be_a_frozen_dataclass_of_known_types(config: type, fragment: str) -> None:
    with pytest.raises(TypeError, match=re.escape(fragment)):
        register_backend("not-registered", config=config)
    assert "not-registered" not in backends()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"backend": "openai", "base_url": "http://x/v1"},
            "model 'g': missing field 'model' for openai",
        ),
        ({"backend": "tgi"}, "model 'g': missing field 'base_url' for tgi"),
        (
            {"backend": "tgi", "base_url": "http://x", "timeout_s": "soon"},
            "model 'g': could not convert string to float: 'soon'",
        ),
        (
            {"backend": "tgi", "base_url": "http://x", "context_length": [1]},
            "model 'g': context_length: expected an integer, got [1]",
        ),
        (
            {"backend": "openai", "base_url": 8080, "model": "m"},
            "model 'g': base_url: expected a string, got 8080",
        ),
        (
            {"backend": "openai", "base_url": "u", "model": "m", "prompt_format": "Chat"},
            "model 'g'.prompt_format: expected one of ['completion', 'chat'], got 'Chat'",
        ),
    ],
)
def test_entry_mistakes_name_the_model(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelsFileError) as err:
        _build({"name": "g", **entry}, GeneratorSettings(data_dir=tmp_path))
    assert str(err.value) == message


def test_configs_keep_the_defaults_the_engines_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = GeneratorSettings(data_dir=tmp_path)
    tgi = _build({"name": "t", "backend": "tgi", "base_url": "http://tgi:8080/"}, settings)
    assert isinstance(tgi, TgiEngine)
    assert tgi.base_url == "http://tgi:8080" and tgi.timeout_s == 120.0
    assert tgi._context_length is None and not tgi.in_process

    monkeypatch.setenv("MY_KEY", "sk-from-env")
    entry = {"name": "o", "backend": "openai", "base_url": "http://v/v1", "model": "m"}
    plain = _build(entry, settings)
    keyed = _build({**entry, "api_key_env": "MY_KEY", "context_length": "8192"}, settings)
    assert isinstance(plain, OpenAICompatEngine) and isinstance(keyed, OpenAICompatEngine)
    assert plain.prompt_format == "completion" and plain.context_length == 4096
    assert plain._client.api_key == "sk-no-key-needed" and plain._client.timeout == 120.0
    assert keyed._client.api_key == "sk-from-env" and keyed.context_length == 8192


async def test_a_tgi_model_without_the_tgi_extra_fails_at_start_up_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GPU image installs [vllm] without [tgi] (text-generation cannot be installed beside
    vLLM): a models file naming a tgi model there fails the start-up with what to do, not
    with an ImportError from the engine."""
    monkeypatch.setitem(sys.modules, "text_generation", None)  # `import` raises ImportError
    path = write(
        tmp_path,
        f"{{name: a, backend: {SCRIPTED}, reply: ok}}",
        "{name: mistral, backend: tgi, base_url: 'http://tgi:8080'}",
    )
    assert [e["name"] for e in _entries(path)] == ["a", "mistral"]  # the file itself is right
    settings = GeneratorSettings(data_dir=tmp_path, generator_models_file=path)
    with pytest.raises(ModelsFileError) as err:
        async with AsyncExitStack() as stack:
            await open_engines(settings, stack)
    assert str(err.value) == f"model 'mistral': {MISSING_CLIENT}"
    assert "text-generation package (harmeval-generator[tgi])" in MISSING_CLIENT
    assert "GPU image serves vllm" in MISSING_CLIENT
    shown = "".join(traceback.format_exception(err.value))  # what the log shows at start-up
    assert "ImportError" not in shown and "ModuleNotFoundError" not in shown


def test_the_readme_table_lists_every_backend_with_its_module_and_fields() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| `backends/(\w+)\.py` \| ([^|]*) \|", readme, re.M)
    table = {name: (module, set(re.findall(r"`(\w+)`", fields))) for name, module, fields in rows}
    assert table == {
        name: (b.module.rsplit(".", 1)[1], set(b.field_names)) for name, b in shipped().items()
    }


# -- the Engine base class and engines from a models file ----------------------------------------


class Minimal(Engine):
    """An engine with only what the base class requires."""

    backend = "minimal"
    context_length = 16

    def __init__(self, name: str) -> None:
        self.name = name

    def settings(self) -> dict[str, str]:
        return {}

    async def check_fits(self, prompt: ModelPrompt, params: GenerationParams) -> None:
        pass

    async def complete(self, prompt: ModelPrompt, params: GenerationParams) -> Completion:
        raise NotImplementedError

    async def stream(
        self, prompt: ModelPrompt, params: GenerationParams, state: StreamState
    ) -> AsyncIterator[str]:
        yield ""

    async def close(self) -> None:
        pass


async def test_engine_defaults() -> None:
    engine = Minimal("m")
    assert engine.in_process is False and engine.healthy is True
    await engine.start()  # the default: nothing to do


def test_an_engine_must_implement_the_abstract_methods() -> None:
    class Incomplete(Engine):
        backend = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


@pytest.fixture
def minimal_backend() -> Iterator[list[Minimal]]:
    @dataclass(frozen=True, kw_only=True)
    class MinimalConfig:
        size: int = 1

    built: list[Minimal] = []

    @register_backend("minimal", config=MinimalConfig)
    def build(name: str, config: MinimalConfig, settings: GeneratorSettings) -> Engine:
        built.append(Minimal(name))
        return built[-1]

    yield built
    unregister_backend("minimal")


async def test_a_registered_backend_is_served_from_the_models_file(
    tmp_path: Path, minimal_backend: list[Minimal]
) -> None:
    path = write(
        tmp_path,
        "{name: a, backend: minimal, size: '3'}",
        f"{{name: b, backend: {SCRIPTED}, reply: ok}}",
    )
    settings = GeneratorSettings(data_dir=tmp_path, generator_models_file=path)
    async with AsyncExitStack() as stack:
        engines = await open_engines(settings, stack)
        assert list(engines) == ["a", "b"] and engines["a"] is minimal_backend[0]
        scripted = engines["b"]
        assert isinstance(scripted, ScriptedEngine) and scripted.started
    assert scripted.closed
    unregister_backend("minimal")  # gone: the file names an unknown backend now
    with pytest.raises(ModelsFileError) as err:
        _entries(path)
    assert "models[0].backend: expected one of ['llama.cpp', 'openai'" in str(err.value)
    assert "minimal" not in str(err.value)
