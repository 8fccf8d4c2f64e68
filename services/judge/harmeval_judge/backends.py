"""The LLM backends judges may call, declared by the operator; a judge definition names one.

A definition (from a study file, the API or the judges file) never carries a URL or a key: the
key of a backend is sent only to that backend's URL, and only the operator says which URLs
exist. ``HARMEVAL_JUDGE_BACKENDS_FILE`` declares them::

    backends:
      - name: openai
        base_url: https://api.openai.com/v1
        api_key_file: /var/run/secrets/harmeval/openai-api-key   # e.g. a mounted Secret
      - name: guard
        base_url: http://vllm-guard:8000/v1
        api_key_env: GUARD_API_KEY       # or the environment variable holding the key
        transport: aiohttp               # openai-sdk | aiohttp (default: the service's)
      - name: node-local
        base_url: http://169.254.20.10:8000/v1
        allow_link_local: true           # link-local and metadata addresses are refused otherwise

``HARMEVAL_JUDGE_LLM_BASE_URL`` and ``HARMEVAL_JUDGE_LLM_API_KEY`` declare the backend named
``default`` (the one a definition without ``backend:`` calls); a ``default`` in the file
replaces it. A relative ``api_key_file`` is read from the backends file's folder, once, at
start-up, and stripped of surrounding whitespace. Every key is registered with
:mod:`harmeval.secrets`, so no log line, error or stored verdict shows it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harmeval.outbound import check_backend_url
from harmeval.secrets import register_secret
from harmeval_judge.llm_client import TRANSPORTS
from harmeval_judge.settings import JudgeSettings

__all__ = ["DEFAULT_BACKEND", "NO_KEY", "Backend", "BackendsError", "load_backends"]

DEFAULT_BACKEND = "default"
# Sent when a backend has no key (a local vLLM): the SDK refuses an empty key, and with none
# it would read OPENAI_API_KEY from the environment, which no declaration named.
NO_KEY = "sk-no-key-needed"
_FIELDS = ("name", "base_url", "api_key_file", "api_key_env", "transport", "allow_link_local")
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")


class BackendsError(ValueError):
    """A mistake in the backends declaration; the message names the file, backend and field."""


@dataclass(frozen=True, kw_only=True)
class Backend:
    name: str
    base_url: str
    api_key: str = field(repr=False)
    # None: the service's HARMEVAL_JUDGE_LLM_TRANSPORT.
    transport: str | None = None
    allow_link_local: bool = False


def _string(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BackendsError(f"{where}.{key}: expected a non-empty string")
    return value.strip()


def _key(entry: Mapping[str, Any], where: str, folder: Path, environ: Mapping[str, str]) -> str:
    key_file = _string(entry, "api_key_file", where)
    key_env = _string(entry, "api_key_env", where)
    if key_file is not None and key_env is not None:
        raise BackendsError(f"{where}: give api_key_file or api_key_env, not both")
    if key_file is not None:
        path = folder / key_file
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise BackendsError(f"{where}.api_key_file: cannot read {path}: {exc}") from None
        if not key:
            raise BackendsError(f"{where}.api_key_file: {path} is empty")
        return key
    if key_env is not None:
        key = environ.get(key_env, "").strip()
        if not key:
            raise BackendsError(f"{where}.api_key_env: {key_env} is not set in the environment")
        return key
    return NO_KEY


def _backend(
    entry: Any, index: int, source: str, folder: Path, environ: Mapping[str, str]
) -> Backend:
    if not isinstance(entry, dict):
        raise BackendsError(f"{source}: backends[{index}]: expected a mapping")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BackendsError(
            f"{source}: backends[{index}].name: expected a name of lower-case letters, digits, "
            "'.', '_' and '-'"
        )
    where = f"{source}: backend {name!r}"
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise BackendsError(f"{where}: unknown field(s) {unknown}; expected some of {_FIELDS}")
    base_url = _string(entry, "base_url", where)
    if base_url is None:
        raise BackendsError(f"{where}.base_url: required")
    allow = entry.get("allow_link_local", False)
    if not isinstance(allow, bool):
        raise BackendsError(f"{where}.allow_link_local: expected true or false")
    try:
        check_backend_url(base_url, allow_link_local=allow)
    except ValueError as exc:
        raise BackendsError(f"{where}.base_url: {exc}") from None
    transport = _string(entry, "transport", where)
    if transport is not None and transport not in TRANSPORTS:
        raise BackendsError(f"{where}.transport: expected one of {list(TRANSPORTS)}")
    return Backend(
        name=name,
        base_url=base_url,
        api_key=_key(entry, where, folder, environ),
        transport=transport,
        allow_link_local=allow,
    )


def read_backends_file(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Backend]:
    """The backends `path` declares, by name; a BackendsError for any mistake."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BackendsError(f"{path}: {exc}") from None
    entries = data.get("backends") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BackendsError(f"{path}: expected 'backends:' with a non-empty list")
    if extra := sorted(str(k) for k in data if k != "backends"):
        raise BackendsError(f"{path}: unknown key(s) {extra}; expected only 'backends'")
    env = os.environ if environ is None else environ
    found: dict[str, Backend] = {}
    for i, entry in enumerate(entries):
        backend = _backend(entry, i, str(path), path.parent, env)
        if backend.name in found:
            raise BackendsError(f"{path}: backends[{i}].name: {backend.name!r} declared twice")
        found[backend.name] = backend
    return found


def load_backends(settings: JudgeSettings) -> dict[str, Backend]:
    """Every declared backend by name: the file's, and ``default`` from the settings unless
    the file declares it. Each key is registered as a secret."""
    backends: dict[str, Backend] = {}
    if settings.judge_backends_file is not None:
        backends = read_backends_file(settings.judge_backends_file)
    if DEFAULT_BACKEND not in backends:
        try:
            check_backend_url(settings.judge_llm_base_url, allow_link_local=False)
        except ValueError as exc:
            raise BackendsError(
                f"HARMEVAL_JUDGE_LLM_BASE_URL: {exc} (or declare the backend 'default' in "
                "HARMEVAL_JUDGE_BACKENDS_FILE)"
            ) from None
        backends[DEFAULT_BACKEND] = Backend(
            name=DEFAULT_BACKEND,
            base_url=settings.judge_llm_base_url,
            api_key=settings.judge_llm_api_key or NO_KEY,
        )
    for backend in backends.values():
        if backend.api_key != NO_KEY:
            register_secret(backend.api_key)
    return backends
