"""Fencing of untrusted text in judge prompts, shared by every LLM judge protocol.

The prompt and answers shown to a judge are written by the models under test, so they are
data, never instructions. Each piece is wrapped between start and end markers carrying a
per-call random nonce the models cannot have seen, and runs of ``<<<`` / ``>>>`` inside it are
neutralised, so a piece cannot close its own fence or forge another. Listwise
(:mod:`harmeval_judge.listwise`) and pointwise/pairwise (:mod:`harmeval_judge.protocols`)
prompts fence with these helpers, and their parsers clean judge output with
:data:`ZERO_WIDTH`, so every protocol fences and cleans identically.
"""

from __future__ import annotations

import re
import secrets

__all__ = ["ZERO_WIDTH", "fence", "make_nonce", "neutralise_fences"]

_NONCE_RE = re.compile(r"[0-9A-Za-z]{4,32}")
# Zero-width characters removed from judge output before parsing (str.translate table).
ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def neutralise_fences(text: str) -> str:
    """Turn runs of three or more ``<`` / ``>`` into look-alike guillemets.

    The judge still sees roughly what the model wrote, but no run of ``<<<`` or ``>>>``
    survives, so the text cannot contain anything shaped like a fence marker.
    """
    text = re.sub(r"<{3,}", lambda m: "\u2039" * len(m.group(0)), text)
    return re.sub(r">{3,}", lambda m: "\u203a" * len(m.group(0)), text)


def make_nonce(nonce: str | None = None) -> str:
    """A fresh random fence nonce, or the given one checked (tests pass fixed ones)."""
    # Random by default so the models under test cannot predict the fence markers.
    if nonce is None:
        return secrets.token_hex(4)
    if not _NONCE_RE.fullmatch(nonce):
        raise ValueError("nonce must be 4..32 ASCII letters or digits")
    return nonce


def fence(label: str, nonce: str, body: str) -> str:
    """`body` between start and end markers carrying the nonce, fence look-alikes neutralised."""
    return f"<<<{label} {nonce}>>>\n{neutralise_fences(body)}\n<<<END {label} {nonce}>>>"
