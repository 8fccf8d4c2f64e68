"""The secrets registry: redact(), scrub() and the logging filter."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest

from harmeval import log
from harmeval.secrets import (
    MAX_ERROR_CHARS,
    REDACTED,
    RedactingFilter,
    redact,
    register_secret,
    scrub,
)


def fresh() -> str:
    return f"sk-{uuid.uuid4().hex}"


def test_redact_replaces_every_occurrence_of_every_registered_secret() -> None:
    a, b = fresh(), fresh()
    register_secret(a)
    register_secret(f"  {b}\n")  # as read from a file: stripped
    text = f"Bearer {a}; again {a}; other {b}."
    assert redact(text) == f"Bearer {REDACTED}; again {REDACTED}; other {REDACTED}."
    assert redact("nothing to hide") == "nothing to hide"


def test_short_and_empty_values_are_not_secrets() -> None:
    for value in ("", "   ", "abc", "1234567"):
        register_secret(value)
    assert redact("abc 1234567 the end") == "abc 1234567 the end"


def test_a_secret_containing_another_is_replaced_whole() -> None:
    short = fresh()
    register_secret(short)
    register_secret(short + "-longer-part")
    assert redact(f"x {short}-longer-part y") == f"x {REDACTED} y"


def test_scrub_redacts_before_cutting() -> None:
    key = fresh()
    register_secret(key)
    # The key straddles the cut: redacted first, no start of it survives.
    text = "a" * (MAX_ERROR_CHARS - 10) + key + "b" * 1000
    out = scrub(text)
    assert key[:10] not in out
    assert out.startswith("a" * (MAX_ERROR_CHARS - 10))
    assert out.endswith("more characters cut]")
    assert len(out) < MAX_ERROR_CHARS + 50
    assert scrub("short") == "short"


def test_the_filter_redacts_messages_args_and_exceptions() -> None:
    key = fresh()
    register_secret(key)
    logger = logging.getLogger("test.secrets")
    handler = logging.StreamHandler(stream := io.StringIO())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        logger.warning(f"inline {key}")
        logger.warning("arg %s and %r", key, {"auth": f"Bearer {key}"})
        logger.warning("named %(k)s", {"k": key})
        try:
            raise RuntimeError(f"upstream said {key}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert key not in out
    assert out.count(REDACTED) == 5
    assert "RuntimeError: upstream said [redacted]" in out


def test_configure_logging_installs_the_filter(capsys: pytest.CaptureFixture[str]) -> None:
    key = fresh()
    register_secret(key)
    root = logging.getLogger()
    # configure_logging sets these levels too: put back as they were for the tests after.
    loggers = [root, *(logging.getLogger(n) for n in ("httpx", "httpx2", "openai", "pgserver"))]
    loggers.append(logging.getLogger("psycopg.pool"))
    saved = root.handlers[:], [lg.level for lg in loggers]
    try:
        log.configure_logging("DEBUG", "json")
        try:
            raise ValueError(key)
        except ValueError:
            logging.getLogger("some.library").debug("sent %s", f"Bearer {key}", exc_info=True)
    finally:
        root.handlers[:] = saved[0]
        for lg, level in zip(loggers, saved[1], strict=True):
            lg.setLevel(level)
    out = capsys.readouterr().out
    assert key not in out
    line = json.loads(out.strip().splitlines()[-1])
    assert line["message"] == f"sent Bearer {REDACTED}"
    assert f"ValueError: {REDACTED}" in line["exc_info"]
