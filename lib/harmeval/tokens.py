"""Bearer tokens: made and revoked by `harmeval token`, checked by every server.

A token is `hev_<id>_<secret>`; the file keeps only the id, a SHA-256 of the secret, the role
and a name, so reading the file (a mounted Secret, a backup) gives no one a token. Secrets are
32 random bytes, so a fast hash is enough: there is nothing to brute-force, unlike a password.
The file is replaced atomically and servers read it again when it changes, so `create` and
`revoke` take effect without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from harmeval.access import ROLES

PREFIX = "hev"
_ID_HEX = 12
# A server looks at the file's mtime at most this often (revocation takes effect within it).
RELOAD_INTERVAL_S = 1.0


class TokenError(ValueError):
    """A token file cannot be read or written, or a token cannot be created or revoked."""


@dataclass(frozen=True)
class TokenEntry:
    id: str
    name: str
    role: str
    sha256: str
    created: str
    revoked: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def read_entries(path: Path) -> list[TokenEntry]:
    """Every token in the file (revoked ones too); no file: none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise TokenError(f"{path}: cannot read the token file: {exc}") from exc
    try:
        return [TokenEntry(**entry) for entry in data["tokens"]]
    except (KeyError, TypeError) as exc:
        raise TokenError(f"{path}: not a token file (expected {{'tokens': [...]}})") from exc


def _write_entries(path: Path, entries: list[TokenEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"version": 1, "tokens": [asdict(e) for e in entries]}, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialises writers (two `harmeval token create` at once must both land)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def create_token(path: Path, role: str, name: str) -> tuple[str, TokenEntry]:
    """A new token for `role`, added to the file; the token itself is returned only here."""
    if role not in ROLES:
        raise TokenError(f"role {role!r}: expected one of {sorted(ROLES)}")
    if not name.strip():
        raise TokenError("a token needs a name (who or what holds it)")
    secret = secrets.token_urlsafe(32)
    with _locked(path):
        entries = read_entries(path)
        if any(e.name == name and e.revoked is None for e in entries):
            raise TokenError(f"a token named {name!r} exists; revoke it first or choose another")
        entry = TokenEntry(
            id=secrets.token_hex(_ID_HEX // 2),
            name=name,
            role=role,
            sha256=_digest(secret),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        _write_entries(path, [*entries, entry])
    return f"{PREFIX}_{entry.id}_{secret}", entry


def revoke_token(path: Path, id_or_name: str) -> TokenEntry:
    """Marks the token revoked (kept in the file, so `list` shows what was revoked when)."""
    with _locked(path):
        entries = read_entries(path)
        matches = [e for e in entries if id_or_name in (e.id, e.name) and e.revoked is None]
        if not matches:
            raise TokenError(f"no active token has the id or name {id_or_name!r}")
        if len(matches) > 1:
            raise TokenError(f"{id_or_name!r} names several tokens; revoke by id")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        revoked = TokenEntry(**{**asdict(matches[0]), "revoked": now})
        _write_entries(path, [revoked if e is matches[0] else e for e in entries])
    return revoked


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name or a certificate's common name, and the role."""

    name: str
    role: str
    via: str  # "token" or "certificate"


class TokenStore:
    """The token file as a server sees it, read again when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_id: dict[str, TokenEntry] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.reload()

    def reload(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._by_id, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._by_id = {e.id: e for e in read_entries(self.path)}
            self._stamp = stamp

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked >= RELOAD_INTERVAL_S:
            self._checked = now
            with contextlib.suppress(TokenError):  # a half-written file: keep the last good one
                self.reload()

    def authenticate(self, token: str) -> Principal:
        """The token's holder; TokenError says why it is refused (never which part matched)."""
        self._maybe_reload()
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != _ID_HEX:
            raise TokenError("malformed token (expected hev_<id>_<secret>)")
        entry = self._by_id.get(parts[1])
        if entry is None:
            # A token made a moment ago works at once: the file is read again when it changed
            # (a stat when it did not).
            with contextlib.suppress(TokenError):
                self.reload()
            entry = self._by_id.get(parts[1])
        # Compared in constant time, and the same refusal for an unknown id and a wrong secret.
        if entry is None or not hmac.compare_digest(entry.sha256, _digest(parts[2])):
            raise TokenError("unknown token")
        if entry.revoked is not None:
            raise TokenError(f"token {entry.name!r} was revoked")
        return Principal(entry.name, entry.role, "token")
