"""The process's secrets (backend keys), kept out of everything it says.

A service registers every key it loads (:func:`register_secret`); :func:`redact` replaces each
registered secret in a text with ``[redacted]``, and :func:`scrub` also cuts the text to a
bounded length: what a backend answered (an error body may echo the request's headers) reaches
a gRPC client, a log line or a database row only through it. :class:`RedactingFilter`, installed
on the handlers by :func:`harmeval.log.configure_logging`, redacts every log record as well.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = [
    "MAX_ERROR_CHARS",
    "MIN_SECRET_CHARS",
    "REDACTED",
    "RedactingFilter",
    "redact",
    "register_secret",
    "scrub",
]

REDACTED = "[redacted]"
# Shorter values are not secrets worth the name, and replacing them would mangle ordinary text.
MIN_SECRET_CHARS = 8
# What an upstream error may take up in a message, a log line or a stored reason.
MAX_ERROR_CHARS = 500

_lock = threading.Lock()
# Longest first: a secret containing another is replaced whole.
_secrets: tuple[str, ...] = ()


def register_secret(value: str) -> None:
    """Redact `value` from now on (ignored when shorter than MIN_SECRET_CHARS)."""
    global _secrets
    value = value.strip()
    if len(value) < MIN_SECRET_CHARS:
        return
    with _lock:
        if value not in _secrets:
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with every registered secret replaced by ``[redacted]``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` redacted, then cut to `limit` characters (saying how much was cut). Redacted
    before cutting, so that no cut leaves the start of a secret behind."""
    text = redact(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters cut]"


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return redact(arg)
    if isinstance(arg, int | float | bool) or arg is None:
        return arg
    text = str(arg)
    redacted = redact(text)
    # Kept as it was unless it shows a secret (its %r or %d formatting stays right).
    return arg if redacted == text else redacted


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments, exception text and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        elif record.msg is not None and redact(str(record.msg)) != str(record.msg):
            record.msg = redact(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            # Formatted here, once: formatters use the cached text.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
