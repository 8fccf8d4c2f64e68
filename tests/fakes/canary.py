"""Canaries for outbound-request tests: a server counting every request it receives (and
answering each with a valid chat completion and TGI answer, so that a request that reached it
would succeed), and one redirecting every request elsewhere.

A test points a backend at the redirecting server, the redirect at the canary, and asserts the
canary counted exactly 0 requests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http_thread import serving

# Valid for the OpenAI chat API, as a listwise verdict, and for TGI's /info: whatever path a
# followed redirect took, it would look like a success.
_ANSWER = {
    "id": "chatcmpl-canary",
    "object": "chat.completion",
    "created": 0,
    "model": "canary",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Content A: N/A\nContent B: N/A"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    "model_id": "canary",
    "max_total_tokens": 4096,
}


@dataclass
class Counted:
    """A server's root URL and every request it received: (method, path, headers)."""

    url: str = ""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return len(self.requests)


def _handler(
    counted: Counted, status: int, body: bytes, location: str | None = None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", 0) or 0)
            if length:
                self.rfile.read(length)
            counted.requests.append(
                (self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            self.send_response(status)
            if location is not None:
                self.send_header("Location", location.rstrip("/") + self.path)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_HEAD = _answer

    return Handler


@contextmanager
def canary() -> Iterator[Counted]:
    """A server answering every request with a success, counting them."""
    counted = Counted()
    with serving(_handler(counted, 200, json.dumps(_ANSWER).encode())) as root:
        counted.url = root
        yield counted


@contextmanager
def redirecting(to: str, status: int = 307) -> Iterator[Counted]:
    """A server answering every request with `status` and `Location: <to><path>`."""
    counted = Counted()
    body = json.dumps({"error": {"message": "moved"}}).encode()
    with serving(_handler(counted, status, body, location=to)) as root:
        counted.url = root
        yield counted
