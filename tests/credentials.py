"""Tokens for the test session: one per role in a token file every test server trusts.

Servers in tests authenticate callers exactly as in production (harmeval.auth); `secured()`
points a service's settings at the session's token file and gives it the operator token for
the calls it makes to other services.
"""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import TypeVar

from harmeval.access import ROLES
from harmeval.settings import CommonSettings
from harmeval.tokens import create_token

S = TypeVar("S", bound=CommonSettings)

_DIR = Path(tempfile.mkdtemp(prefix="harmeval-test-tokens-"))
atexit.register(shutil.rmtree, _DIR, True)
TOKENS_FILE = _DIR / "tokens.json"
TOKENS = {role: create_token(TOKENS_FILE, role, f"test-{role}")[0] for role in sorted(ROLES)}
OPERATOR_TOKEN = TOKENS["operator"]


def secured(settings: S, token: str = OPERATOR_TOKEN) -> S:
    """`settings` trusting the session's tokens and calling other services with `token`."""
    return dataclasses.replace(settings, auth_tokens_file=TOKENS_FILE, token=token)


def client_settings(token: str = OPERATOR_TOKEN) -> CommonSettings:
    return CommonSettings(token=token)
