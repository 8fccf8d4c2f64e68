"""A contract fake of the OpenAI chat-completions wire format, for scripting judge models.

It speaks the documented JSON of POST /v1/chat/completions (what OpenAI, vLLM, TGI's
messages API and llama.cpp's server all answer), so the real `openai` SDK talks to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http_thread import serving

# (status, content) or (status, content, headers): content is the assistant message for 200,
# an error message otherwise; headers e.g. {"retry-after": "1"} on a 429. Content given as
# bytes is sent as the whole body, as is (a server answering something that is not JSON).
Script = Callable[[list[dict[str, Any]]], tuple[Any, ...]]


@dataclass
class FakeOpenAI:
    script: Script
    requests: list[dict[str, Any]] = field(default_factory=list)
    # The HTTP headers of each request, names lower-cased.
    headers: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""
    # Returned as the first token's top_logprobs when a request asks for logprobs.
    first_token_logprobs: dict[str, float] = field(default_factory=dict)
    # The response_format types the server takes (None: any). Another is answered as
    # llama-cpp-python's server answers {"type": "json_schema"}: 500, a validation error
    # naming the field (it takes only "text" and "json_object").
    response_formats: tuple[str, ...] | None = None

    @property
    def calls(self) -> int:
        return len(self.requests)


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, status: int, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
        ) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _logprobs(self, body: dict[str, Any]) -> dict[str, Any]:
            if not body.get("logprobs") or not fake.first_token_logprobs:
                return {}
            top = [{"token": t, "logprob": lp} for t, lp in fake.first_token_logprobs.items()]
            first = {**max(top, key=lambda alt: alt["logprob"]), "top_logprobs": top}
            return {"logprobs": {"content": [first]}}

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            fake.requests.append(body)
            fake.headers.append({k.lower(): v for k, v in self.headers.items()})
            kind = (body.get("response_format") or {}).get("type")
            takes = fake.response_formats
            if kind is not None and takes is not None and kind not in takes:
                expected = " or ".join(map(repr, takes))
                message = (
                    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', "
                    f"'response_format', 'type'), 'msg': \"Input should be {expected}\", "
                    f"'input': {kind!r}}}"
                )
                self._send(500, {"error": {"message": message, "type": "internal_server_error"}})
                return
            status, content, *rest = fake.script(body["messages"])
            if isinstance(content, bytes):
                self._send(status, content, rest[0] if rest else None)
                return
            if status != 200:
                self._send(
                    status,
                    {"error": {"message": content, "type": "server_error"}},
                    rest[0] if rest else None,
                )
                return
            self._send(
                200,
                {
                    "id": f"chatcmpl-{len(fake.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                            **self._logprobs(body),
                        }
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
                },
            )

    return Handler


@contextmanager
def fake_openai(script: Script) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(script)
    with serving(_handler(fake)) as root:
        fake.base_url = f"{root}/v1"
        yield fake
