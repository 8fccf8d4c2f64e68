"""Study files: which prompts, which small models (model + decoding), which judges."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harmeval.params import DEFAULT_MAX_TOKENS, GenerationParams
from harmeval_client.prompts import PromptFileError, PromptRecord, load_prompt_set


class StudyFileError(ValueError):
    """A mistake in a study file; the message names the file, the field and what was expected."""


@dataclass(frozen=True)
class StudyModel:
    name: str
    model: str
    params: GenerationParams


@dataclass(frozen=True)
class Study:
    name: str
    prompts: list[PromptRecord]
    models: list[StudyModel]
    judges: list[str]
    # Judges defined in the study file itself (mappings), sent to the judge service first.
    judge_definitions: list[dict[str, Any]] = field(default_factory=list)


_TOP_KEYS = {"name", "description", "prompts", "limit", "models", "judges"}
_MODEL_KEYS = {
    "name",
    "model",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "system_prompt",
}


def _number(where: str, value: Any, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StudyFileError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise StudyFileError(f"{where}: expected a finite number, got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise StudyFileError(f"{where}: expected a whole number, got {value!r}")
    return kind(value)


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise StudyFileError(f"{where}: expected text, got {value!r}")
    return value


def _parse_model(where: str, raw: Any) -> StudyModel:
    if not isinstance(raw, dict):
        raise StudyFileError(f"{where}: expected a mapping with name and model, got {raw!r}")
    unknown = set(raw) - _MODEL_KEYS
    if unknown:
        raise StudyFileError(
            f"{where}: unknown field(s) {sorted(unknown)}; expected some of {sorted(_MODEL_KEYS)}"
        )
    for key in ("name", "model"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise StudyFileError(f"{where}.{key}: expected a non-empty string")
    stop = raw.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise StudyFileError(f"{where}.stop: expected a list of non-empty strings")
    params = GenerationParams(
        temperature=_number(f"{where}.temperature", raw.get("temperature", 0.0), float),
        top_p=_number(f"{where}.top_p", raw.get("top_p", 1.0), float),
        max_tokens=_number(f"{where}.max_tokens", raw.get("max_tokens", DEFAULT_MAX_TOKENS), int),
        stop=tuple(stop),
        seed=_number(f"{where}.seed", raw.get("seed", 0), int),
        system_prompt=_text(f"{where}.system_prompt", raw.get("system_prompt", "")),
    )
    if problems := params.validate():
        raise StudyFileError(f"{where}: " + "; ".join(problems))
    return StudyModel(raw["name"].strip(), raw["model"].strip(), params)


def parse_study(data: Any, source: str, base_dir: Path) -> Study:
    def fail(msg: str) -> StudyFileError:
        return StudyFileError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise fail("expected a mapping with name, prompts, models and judges")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise fail(f"unknown field(s) {sorted(unknown)}; expected some of {sorted(_TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name: expected a non-empty string")
    spec = data.get("prompts", "builtin")
    if not isinstance(spec, str):
        raise fail("prompts: expected 'builtin' or a path to a .jsonl or .csv file")
    try:
        prompts = load_prompt_set(spec, base_dir=base_dir)
    except PromptFileError as exc:
        raise fail(f"prompts: {exc}") from exc
    limit = data.get("limit")
    if limit is not None:
        limit = _number("limit", limit, int)
        if limit < 1:
            raise fail(f"limit: expected a positive number, got {limit}")
        prompts = prompts[:limit]
    models_raw = data.get("models")
    if not isinstance(models_raw, list) or not models_raw:
        raise fail("models: expected a non-empty list of small models")
    try:
        models = [_parse_model(f"models[{i}]", m) for i, m in enumerate(models_raw)]
    except StudyFileError as exc:
        raise fail(str(exc)) from exc
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise fail(f"models: names must be unique, got {names}")
    judges_raw = data.get("judges")
    if not isinstance(judges_raw, list) or not judges_raw:
        raise fail("judges: expected a non-empty list of judge names or definitions")
    judges: list[str] = []
    definitions: list[dict[str, Any]] = []
    for i, j in enumerate(judges_raw):
        if isinstance(j, str) and j.strip():
            judges.append(j.strip())
        elif isinstance(j, dict) and isinstance(j.get("name"), str) and j["name"].strip():
            judges.append(j["name"].strip())
            definitions.append(j)
        else:
            raise fail(f"judges[{i}]: expected a judge name or a definition with a name")
    if len(set(judges)) != len(judges):
        raise fail(f"judges: names must be unique, got {judges}")
    return Study(name.strip(), prompts, models, judges, definitions)


def load_study(path: str | Path) -> Study:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StudyFileError(f"{path}: no such study file") from exc
    except UnicodeDecodeError as exc:
        raise StudyFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise StudyFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise StudyFileError(f"{path}: not valid YAML: {exc}") from exc
    return parse_study(data, str(path), path.parent)
