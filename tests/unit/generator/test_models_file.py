"""Mistakes in the generator's models file are named, never silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from harmeval_generator.engines import ModelsFileError, _entries


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (
            "{name: g, backend: openai, base_url: 'http://x/v1', model: m, context_lenght: 8}",
            "models[0]: unknown field(s) ['context_lenght'] for openai",
        ),
        (
            "{name: g, backend: openai, base_url: 'http://x/v1', model: m, prompt_format: Chat}",
            "models[0].prompt_format: expected one of ['completion', 'chat'], got 'Chat'",
        ),
        ("{name: g, backend: tgi, base_url: 'http://x', n_ctx: 9}", "unknown field(s) ['n_ctx']"),
        ("{name: g, backend: ollama}", "models[0].backend: expected one of"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, entry: str, fragment: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(f"models:\n  - {entry}\n")
    with pytest.raises(ModelsFileError) as err:
        _entries(path)
    assert fragment in str(err.value)


def test_every_documented_field_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - {name: a, backend: llama.cpp, model_path: /m.gguf, n_ctx: 2048, n_threads: 2,"
        " prompt_format: completion}\n"
        "  - {name: b, backend: tgi, base_url: 'http://tgi', timeout_s: 30, context_length: 4096}\n"
        "  - {name: c, backend: openai, base_url: 'http://v/v1', model: m, api_key_env: K,"
        " prompt_format: chat, context_length: 8192, timeout_s: 60}\n"
        "  - {name: d, backend: vllm, model: m, prompt_format: chat, max_model_len: 4096,"
        " gpu_memory_utilization: 0.8, dtype: auto, engine_kwargs: {}}\n"
    )
    assert [e["name"] for e in _entries(path)] == ["a", "b", "c", "d"]
