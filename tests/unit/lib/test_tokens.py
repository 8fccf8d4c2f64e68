"""Bearer tokens: made, listed, revoked; only hashes on disk; refusals say why."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from harmeval import tokens
from harmeval.access import ANALYST, GRANTS, OPERATOR, ROLES, VIEWER, Rule, may_call
from harmeval.tokens import TokenError, TokenStore, create_token, read_entries, revoke_token
from harmeval_client.cli.main import main
from harmeval_client.cli.tokens import CLI_TOKEN, local_token, with_local_token
from harmeval_client.settings import ClientSettings


def test_the_file_keeps_a_hash_never_the_token(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "tokens.json"
    token, entry = create_token(path, VIEWER, "dashboards")
    text = path.read_text()
    secret = token.split("_", 2)[2]
    assert secret not in text and token not in text
    assert json.loads(text)["tokens"][0]["sha256"] == entry.sha256
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert TokenStore(path).authenticate(token).role == VIEWER


def test_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "RELOAD_INTERVAL_S", 0.0)
    path = tmp_path / "tokens.json"
    token, _ = create_token(path, ANALYST, "notebook")
    store = TokenStore(path)
    assert store.authenticate(token).name == "notebook"
    for bad, reason in [
        ("Bearer", "malformed"),
        ("hev_short_x", "malformed"),
        (token[:-1] + ("A" if token[-1] != "A" else "B"), "unknown token"),
        ("hev_" + "0" * 12 + "_" + token.split("_", 2)[2], "unknown token"),
    ]:
        with pytest.raises(TokenError, match=reason):
            store.authenticate(bad)
    revoke_token(path, "notebook")
    with pytest.raises(TokenError, match="'notebook' was revoked"):
        store.authenticate(token)
    assert read_entries(path)[0].revoked is not None


def test_names_are_unique_among_active_tokens_and_roles_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    create_token(path, OPERATOR, "ci")
    with pytest.raises(TokenError, match="exists"):
        create_token(path, VIEWER, "ci")
    with pytest.raises(TokenError, match="role 'admin'"):
        create_token(path, "admin", "x")
    revoke_token(path, "ci")
    create_token(path, VIEWER, "ci")  # the name is free again
    with pytest.raises(TokenError, match="no active token"):
        revoke_token(path, "nobody")


def test_grants() -> None:
    assert GRANTS[OPERATOR] == ROLES
    assert may_call(ANALYST, Rule(VIEWER)) and not may_call(VIEWER, Rule(ANALYST))
    assert not may_call("annotator", Rule(ANALYST)) and may_call("annotator", Rule("annotator"))
    assert not may_call("", Rule(VIEWER))


def test_token_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.json"
    assert (
        main(["token", "create", "--role", "viewer", "--name", "grafana", "--file", str(path)]) == 0
    )
    token = capsys.readouterr().out.strip()
    assert token.startswith("hev_") and TokenStore(path).authenticate(token).name == "grafana"
    assert main(["token", "list", "--file", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "grafana" in listed and token.split("_", 2)[2] not in listed
    assert main(["token", "revoke", "grafana", "--file", str(path)]) == 0
    assert main(["token", "revoke", "grafana", "--file", str(path)]) == 2
    assert "no active token" in capsys.readouterr().err


def test_harmeval_up_keeps_a_valid_local_token_and_replaces_a_revoked_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "RELOAD_INTERVAL_S", 0.0)
    settings = ClientSettings(data_dir=tmp_path)
    path = local_token(settings, CLI_TOKEN, "local-cli")
    first = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_token(settings, CLI_TOKEN, "local-cli").read_text().strip() == first
    revoke_token(settings.tokens_path, TokenStore(settings.tokens_path).authenticate(first).name)
    second = local_token(settings, CLI_TOKEN, "local-cli").read_text().strip()
    assert second != first
    assert TokenStore(settings.tokens_path).authenticate(second).role == OPERATOR
    # The CLI uses it when given no token.
    assert with_local_token(settings).token_file == path
    assert with_local_token(ClientSettings(data_dir=tmp_path, token="t")).token_file is None
