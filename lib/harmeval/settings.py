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
    # Longest wait for a pooled connection before the RPC fails UNAVAILABLE (retryable).
    db_acquire_timeout_s: float = 10.0
    # gRPC message size limit in bytes (never unlimited).
    max_message_bytes: int = 16 * 1024 * 1024
    # Servers close a client's connection after this long (after a grace for calls in flight),
    # so clients resolve the service's name again and spread over replicas started since.
    grpc_max_connection_age_s: float = 60.0
    # RPCs a server handles at once; more are refused with RESOURCE_EXHAUSTED at once (clients
    # retry that), instead of queueing unboundedly or being CANCELLED by gRPC's own limits.
    grpc_max_concurrent_rpcs: int = 2048

    # --- Security (README "Security"). A server serves TLS when given a certificate and key
    # (PEM files, read again when they change, so rotation needs no restart); with a client CA
    # it requires and verifies client certificates (mutual TLS). Without a certificate it
    # listens in plaintext, which is refused on any address but loopback unless allowed.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    allow_plaintext: bool = False
    # A second, plaintext port serving only grpc.health.v1 (e.g. "0.0.0.0:8081"): Kubernetes'
    # native gRPC probes cannot speak TLS. Empty: health is served on the main port only.
    health_address: str = ""
    # Hashed bearer tokens (`harmeval token create`); unset: data_dir/auth/tokens.json.
    auth_tokens_file: Path | None = None
    # Identities from client certificates: "common-name=role,..." (e.g. "runner=operator").
    auth_cert_roles: str = ""
    # --- As a client (the CLI, and services calling each other): the CA that signed the
    # servers' certificates (TLS on when set), this client's certificate and key for mutual
    # TLS, and the bearer token to send (or a file holding it, e.g. a mounted Secret).
    tls_ca_file: Path | None = None
    tls_client_cert_file: Path | None = None
    tls_client_key_file: Path | None = None
    token: str = ""
    token_file: Path | None = None

    @property
    def tokens_path(self) -> Path:
        return self.auth_tokens_file or self.data_dir / "auth" / "tokens.json"


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
    "SettingsError",
    "describe",
    "env_name",
    "load",
]
