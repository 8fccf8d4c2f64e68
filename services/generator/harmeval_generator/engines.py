"""Which models a generator serves: one YAML file, or the embedded Gemma by default.

HARMEVAL_GENERATOR_MODELS_FILE lists the models, e.g.

    models:
      - {name: gemma3-270m, backend: llama.cpp, model_path: /models/gemma.gguf, n_ctx: 2048}
      - {name: gemma-chat, backend: llama.cpp, prompt_format: chat, chat_format: gemma}
      - {name: qwen2.5-0.5b, backend: vllm, model: Qwen/Qwen2.5-0.5B, prompt_format: completion}
      - {name: mistral-7b, backend: tgi, base_url: http://tgi:8080}
      - {name: phi-3, backend: openai, base_url: http://vllm:8000/v1, model: microsoft/Phi-3-mini,
         prompt_format: chat, api_key_env: VLLM_API_KEY}
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import yaml

from harmeval.settings import GeneratorSettings
from harmeval_generator.backends.base import Engine
from harmeval_generator.backends.llamacpp import LlamaCppEngine, embedded_model_path

BACKENDS = ("llama.cpp", "vllm", "tgi", "openai")
# The fields each backend reads; anything else is a typo that would be ignored silently.
FIELDS = {
    "llama.cpp": {"model_path", "n_ctx", "n_threads", "prompt_format", "chat_format"},
    "vllm": {
        "model",
        "prompt_format",
        "max_model_len",
        "gpu_memory_utilization",
        "dtype",
        "engine_kwargs",
    },
    "tgi": {"base_url", "timeout_s", "context_length"},
    "openai": {"base_url", "model", "api_key_env", "prompt_format", "context_length", "timeout_s"},
}
PROMPT_FORMATS = ("completion", "chat")


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
    names = set()
    for i, m in enumerate(models):
        where = f"{path}: models[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise ModelsFileError(f"{where}.name: expected a non-empty string")
        if m.get("backend") not in BACKENDS:
            raise ModelsFileError(f"{where}.backend: expected one of {list(BACKENDS)}")
        if m["name"] in names:
            raise ModelsFileError(f"{where}.name: {m['name']!r} listed twice")
        names.add(m["name"])
        unknown = sorted(set(m) - {"name", "backend"} - FIELDS[m["backend"]])
        if unknown:
            raise ModelsFileError(
                f"{where}: unknown field(s) {unknown} for {m['backend']}; expected some of "
                f"{sorted(FIELDS[m['backend']])}"
            )
        if m.get("prompt_format", "completion") not in PROMPT_FORMATS:
            raise ModelsFileError(
                f"{where}.prompt_format: expected one of {list(PROMPT_FORMATS)}, "
                f"got {m['prompt_format']!r}"
            )
    return models


def _build(entry: dict[str, Any], settings: GeneratorSettings) -> Engine:
    name, backend = entry["name"], entry["backend"]
    where = f"model {name!r}"
    try:
        if backend == "llama.cpp":
            path = entry.get("model_path") or settings.generator_model_path
            return LlamaCppEngine(
                name,
                Path(path) if path else embedded_model_path(settings.data_dir),
                n_ctx=int(entry.get("n_ctx", settings.generator_n_ctx)),
                n_threads=int(entry.get("n_threads", settings.generator_n_threads)),
                prompt_format=entry.get("prompt_format", "completion"),
                chat_format=entry.get("chat_format"),
            )
        if backend == "vllm":
            from harmeval_generator.backends.vllm import VllmEngine

            return VllmEngine(
                name,
                entry["model"],
                prompt_format=entry.get("prompt_format", "completion"),
                max_model_len=entry.get("max_model_len"),
                gpu_memory_utilization=float(entry.get("gpu_memory_utilization", 0.85)),
                dtype=entry.get("dtype", "auto"),
                engine_kwargs=entry.get("engine_kwargs"),
            )
        if backend == "tgi":
            from harmeval_generator.backends.tgi import TgiEngine

            context_length = entry.get("context_length")
            return TgiEngine(
                name,
                entry["base_url"],
                timeout_s=float(entry.get("timeout_s", 120)),
                context_length=int(context_length) if context_length is not None else None,
            )
        from harmeval_generator.backends.openai_compat import OpenAICompatEngine

        return OpenAICompatEngine(
            name,
            entry["base_url"],
            entry["model"],
            api_key=os.environ.get(entry.get("api_key_env", ""), "sk-no-key-needed"),
            prompt_format=entry.get("prompt_format", "completion"),
            context_length=int(entry.get("context_length", 4096)),
            timeout_s=float(entry.get("timeout_s", 120)),
        )
    except KeyError as exc:
        raise ModelsFileError(f"{where}: missing field {exc.args[0]!r} for {backend}") from exc
    except ValueError as exc:
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
        start = getattr(engine, "start", None)
        if start is not None:
            await start()
        engines[engine.name] = engine
    return engines
