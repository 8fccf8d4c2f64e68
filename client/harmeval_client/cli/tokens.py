"""`harmeval token create|list|revoke`: bearer tokens in the token file the services read,
and the local stack's own tokens (made by `harmeval up`)."""

from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harmeval.access import OPERATOR, ROLES
from harmeval.tokens import TokenError, TokenStore, create_token, read_entries, revoke_token
from harmeval_client.settings import ClientSettings

# Under data_dir/auth: what `harmeval up` makes for the person at the terminal (the CLI reads
# it when no --token is given) and for the services' calls to each other.
CLI_TOKEN = "cli.token"
SERVICES_TOKEN = "services.token"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="create, list and revoke bearer tokens")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="make a token for a role; it is printed once, only its hash is kept"
    )
    create.add_argument("--role", required=True, choices=sorted(ROLES))
    create.add_argument("--name", required=True, help="who or what holds it")
    actions.add_parser("list", help="the tokens in the file (never the tokens themselves)")
    revoke = actions.add_parser("revoke", help="revoke a token (services notice within 1 s)")
    revoke.add_argument("token_id", metavar="ID_OR_NAME")
    for action in actions.choices.values():
        action.add_argument(
            "--file",
            type=Path,
            default=None,
            help="the token file (default: HARMEVAL_AUTH_TOKENS_FILE or <data dir>/auth/"
            "tokens.json); in Kubernetes, the file of the harmeval-tokens Secret",
        )


def run(args: argparse.Namespace, settings: ClientSettings, console: Console) -> None:
    path: Path = args.file or settings.tokens_path
    if args.action == "create":
        token, entry = create_token(path, args.role, args.name)
        Console(stderr=True).print(
            f"token {entry.id} ({entry.name}, {entry.role}) added to {path}; "
            "it is shown once, keep it secret:"
        )
        print(token)
    elif args.action == "list":
        table = Table(title=f"tokens in {path}")
        for col in ("id", "name", "role", "created", "revoked"):
            table.add_column(col)
        for e in read_entries(path):
            table.add_row(e.id, e.name, e.role, e.created, e.revoked or "")
        console.print(table)
    else:
        entry = revoke_token(path, args.token_id)
        console.print(f"token {entry.id} ({entry.name}) revoked at {entry.revoked}")


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def local_token(settings: ClientSettings, file_name: str, name: str) -> Path:
    """The local stack's operator token `file_name` under data_dir/auth, made on first use."""
    path = settings.data_dir.resolve() / "auth" / file_name
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        try:
            TokenStore(settings.tokens_path).authenticate(token)
            return path
        except TokenError:
            pass  # revoked, or the token file was replaced: make a new one
    token, _ = create_token(settings.tokens_path, OPERATOR, f"{name}-{secrets.token_hex(4)}")
    _write_secret(path, token)
    return path


def with_local_token(settings: ClientSettings) -> ClientSettings:
    """The CLI's credentials: --token/HARMEVAL_TOKEN(_FILE) when given, else the token
    `harmeval up` made for this data dir."""
    if settings.token or settings.token_file:
        return settings
    path = settings.data_dir.resolve() / "auth" / CLI_TOKEN
    return replace(settings, token_file=path) if path.exists() else settings


__all__ = ["CLI_TOKEN", "SERVICES_TOKEN", "TokenError", "add_parser", "local_token", "run"]
