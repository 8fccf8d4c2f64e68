"""Credentials for the benches: every server authenticates its callers (harmeval.auth), so a
bench makes a token file in its working directory, points the services at it and calls them,
as they call each other, with an operator token (nothing a bench does needs less).
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from harmeval.settings import CommonSettings
from harmeval.tokens import create_token

S = TypeVar("S", bound=CommonSettings)


@dataclass(frozen=True)
class BenchAuth:
    tokens_file: Path
    token: str

    def env(self) -> dict[str, str]:
        """For a service started as a process: trust the file, call others with the token."""
        return {"HARMEVAL_AUTH_TOKENS_FILE": str(self.tokens_file), "HARMEVAL_TOKEN": self.token}

    def secured(self, settings: S) -> S:
        """`settings` (of a server in this process) trusting the file, calling with the token."""
        return dataclasses.replace(settings, auth_tokens_file=self.tokens_file, token=self.token)

    def client(self, settings: CommonSettings | None = None) -> CommonSettings:
        """Settings for this process's channels (harmeval.clients): `settings` (e.g. TLS) with
        the token."""
        return dataclasses.replace(settings or CommonSettings(), token=self.token)


def bench_auth(directory: Path) -> BenchAuth:
    """An operator token in `directory`/auth/tokens.json (added to the file if it exists, so a
    bench may call this once per stack it starts in one directory)."""
    path = directory / "auth" / "tokens.json"
    token, _ = create_token(path, "operator", f"bench-{secrets.token_hex(4)}")
    return BenchAuth(path, token)
