"""Which models a generator serves: one YAML file, or the embedded Gemma by default.

HARMEVAL_GENERATOR_MODELS_FILE lists the models, e.g.

    models:
      - {name: gemma3-270m, backend: llama.cpp, model_path: /models/gemma.gguf, n_ctx: 2048}
      - {name: gemma-chat, backend: llama.cpp, prompt_format: chat, chat_format: gemma}
      - {name: qwen2.5-0.5b, backend: vllm, model: Qwen/Qwen2.5-0.5B, prompt_format: completion}
      - {name: mistral-7b, backend: tgi, base_url: http://tgi:8080}
      - {name: phi-3, backend: openai, base_url: http://vllm:8000/v1, model: microsoft/Phi-3-mini,
         prompt_format: chat, api_key_env: VLLM_API_KEY}

Which backends exist, and which fields each reads, is what the backend modules register
(`backends/registry.py`); this module reads an entry into its backend's config by the kernel's
rule (:mod:`harmeval.registry`: unknown fields, wrong choices, missing fields, values of the
wrong type), each mistake a ModelsFileError naming the entry, and builds its engine with the
backend's factory.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import yaml

from harmeval.registry import ConfigError
from harmeval_generator.backends.base import Engine
from harmeval_generator.backends.registry import Backend, backends
from harmeval_generator.settings import GeneratorSettings

__all__ = ["ModelsFileError", "open_engines"]


class ModelsFileError(ValueError):
    """A mistake in the models file; names the entry and field."""


def _entries(path: Path) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ModelsFileError(f"{path}: {exc}") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list) or not models:
        raise ModelsFileError(f"{path}: expected 'models:' with a non-empty list")
    registered = backends()
    names = set()
    for i, m in enumerate(models):
        where = f"{path}: models[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise ModelsFileError(f"{where}.name: expected a non-empty string")
        named = m.get("backend")
        backend = registered.get(named) if isinstance(named, str) else None
        if backend is None:
            raise ModelsFileError(f"{where}.backend: expected one of {sorted(registered)}")
        if m["name"] in names:
            raise ModelsFileError(f"{where}.name: {m['name']!r} listed twice")
        names.add(m["name"])
        _config(m, backend, where, checking=True)
    return models


def _config(
    entry: Mapping[str, Any], backend: Backend[Any], where: str, *, checking: bool = False
) -> Any:
    """The backend's config from a models-file entry, read by the kernel's rule
    (:meth:`~harmeval.registry.Configured.read`); a ModelsFileError naming the entry for any
    mistake in it. `checking` (the file read, its engines not built yet) names only unknown
    fields and values outside a field's choices: the rest wait for the build, naming the model."""
    try:
        return backend.read(entry, f"backend {backend.name!r}")
    except ConfigError as exc:
        field, kind = exc.field, exc.kind
        choices = next((f.choices for f in backend.fields if f.name == field), None)
        if kind == "unknown":
            message = f"unknown field(s) {list(exc.unknown)} for {backend.name}; "
            expected = sorted(backend.field_names)
            raise ModelsFileError(f"{where}: {message}expected some of {expected}") from None
        if choices is not None and kind in ("choice", "type"):  # prompt_format: Chat, or 1
            message = f"expected one of {list(choices)}, got {entry[field]!r}"
            raise ModelsFileError(f"{where}.{field}: {message}") from None
        if checking:
            return None
        if kind == "missing":
            raise ModelsFileError(f"{where}: missing field {field!r} for {backend.name}") from None
        if kind == "type":
            message = f"expected {exc.message}, got {entry[field]!r}"
            raise ModelsFileError(f"{where}: {field}: {message}") from None
        raise ModelsFileError(f"{where}: {exc.message}") from None  # int("2k")


def _build(entry: Mapping[str, Any], settings: GeneratorSettings) -> Engine:
    """The engine a models-file entry describes (not started yet)."""
    name, backend_name = entry["name"], entry["backend"]
    where = f"model {name!r}"
    backend = backends().get(backend_name)
    if backend is None:
        raise ModelsFileError(f"{where}: unknown backend {backend_name!r}")
    try:
        return backend.build(name, _config(entry, backend, where), settings)
    except ValueError as exc:
        if isinstance(exc, ModelsFileError):
            raise
        raise ModelsFileError(f"{where}: {exc}") from exc


async def open_engines(settings: GeneratorSettings, stack: AsyncExitStack) -> dict[str, Engine]:
    """Builds and starts every configured engine; each is closed when the stack unwinds."""
    if settings.generator_models_file:
        entries = _entries(settings.generator_models_file)
    else:
        entries = [{"name": settings.generator_model_name, "backend": "llama.cpp"}]
    engines: dict[str, Engine] = {}
    for entry in entries:
        engine = _build(entry, settings)
        stack.push_async_callback(engine.close)
        await engine.start()
        engines[engine.name] = engine
    return engines
