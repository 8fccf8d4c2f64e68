"""A contract fake of Hugging Face text-generation-inference's HTTP API, for scripting models.

It mirrors TGI's documented wire format (docs/openapi.json, router 2.x) closely enough that the
official `text_generation` client talks to it unchanged:

* `GET /info` -> `Info`: model_id, max_input_tokens, max_total_tokens, max_best_of,
  max_stop_sequences, max_concurrent_requests, router, version, … (`legacy_info=True` answers
  as TGI 1.x did: `max_input_length` instead of `max_input_tokens`).
* `GET /health` -> 200.
* `POST /generate` (`GenerateRequest` {"inputs", "parameters"}) -> `GenerateResponse`
  {"generated_text", "details": {"finish_reason", "generated_tokens", "seed", "prefill",
  "tokens": [{"id", "text", "logprob", "special"}], "top_tokens", "best_of_sequences"}}, with
  the router's x-prompt-tokens / x-generated-tokens headers.
* `POST /generate_stream` -> Server-Sent Events, one `data:{StreamResponse}` per token
  ({"index", "token", "top_tokens", "generated_text": null, "details": null}); the last one has
  `generated_text` and `details` {"finish_reason", "generated_tokens", "seed", "input_length"}.
* `POST /` (`CompatGenerateRequest`, what `text_generation.AsyncClient` calls): `/generate`
  wrapped in a one-element list when `"stream": false`, `/generate_stream` when true.
* Errors are `ErrorResponse` {"error", "error_type"}: validation 422, generation 424,
  overloaded 429, incomplete_generation 500. As in TGI's router, errors on a stream are sent
  as an SSE event on an HTTP 200 response, unless the scripted error names a status (a proxy,
  or an overloaded router refusing before the stream starts).

Validation follows the router's order and wording (router/src/validation.rs), prefixed with
"Input validation error: ": temperature / top_p / max_new_tokens / stop count / empty inputs,
then "`inputs` tokens + `max_new_tokens` must be <= {max_total}. Given: …", then "`inputs` must
have less than {max_input} tokens. Given: …".

Generation follows TGI's stopping criteria, checked after each token in this order: max_new_tokens
reached -> "length"; the EOS token -> "eos_token"; the text so far ends with a stop sequence ->
"stop_sequence" (the stop sequence stays in the text, as TGI returns it). The EOS token is
special ("</s>"): it counts in generated_tokens but not in generated_text.

Tokenisation is a fake: the prompt is whitespace-split (so input_length = len(inputs.split())),
and the script says which token texts the model generates. `seed` is echoed in details only when
sampling, as TGI does. A per-token delay makes generations slow; while generating, the fake
notices a client that hung up (as TGI drops the request) and records it in `disconnected`.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http_thread import serving

EOS_TEXT = "</s>"
EOS_ID = 2
STATUS = {"validation": 422, "generation": 424, "overloaded": 429, "incomplete_generation": 500}

# (inputs, parameters) -> (generated token texts, "eos_token" | "length"): "eos_token" means the
# model emits EOS after those tokens; "length" that it would go on (the fake stops at the end of
# the list or at max_new_tokens, whichever is first, reporting "length").
Script = Callable[[str, dict[str, Any]], tuple[list[str], str]]


class TgiScriptError(Exception):
    """Raise from a script to answer with a TGI error (error_type: validation, generation,
    overloaded, incomplete_generation). `status` forces an HTTP error even on a stream."""

    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status


@dataclass
class LoggedRequest:
    path: str
    body: dict[str, Any]

    @property
    def inputs(self) -> str:
        return str(self.body.get("inputs", ""))

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.body.get("parameters") or {})


@dataclass
class FakeTgi:
    script: Script
    model_id: str = "fake-org/fake-base-model"
    max_input_tokens: int = 1024
    max_total_tokens: int = 2048
    max_stop_sequences: int = 4
    legacy_info: bool = False
    token_delay_s: float = 0.0
    requests: list[LoggedRequest] = field(default_factory=list)
    base_url: str = ""
    # Set when a generation starts / when a client hung up before its generation ended.
    generating: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    disconnects: int = 0
    completed: int = 0

    @property
    def calls(self) -> int:
        return len(self.requests)

    def info(self) -> dict[str, Any]:
        common = {
            "model_id": self.model_id,
            "model_sha": None,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": 128,
            "max_best_of": 2,
            "max_stop_sequences": self.max_stop_sequences,
            "max_total_tokens": self.max_total_tokens,
            "validation_workers": 2,
            "sha": None,
            "docker_label": None,
        }
        if self.legacy_info:
            return {
                **common,
                "model_dtype": "torch.float16",
                "model_device_type": "cuda",
                "max_input_length": self.max_input_tokens,
                "waiting_served_ratio": 1.2,
                "max_batch_total_tokens": 16000,
                "max_waiting_tokens": 20,
                "version": "1.4.5",
            }
        return {
            **common,
            "max_input_tokens": self.max_input_tokens,
            "max_client_batch_size": 4,
            "router": "text-generation-router",
            "version": "2.4.1",
        }


@dataclass
class _Plan:
    """A validated request and what the scripted model generates for it."""

    input_tokens: list[str]
    tokens: list[dict[str, Any]]
    generated_text: str
    finish_reason: str
    seed: int | None
    details: bool
    decoder_input_details: bool


def _token(text: str, special: bool = False) -> dict[str, Any]:
    token_id = EOS_ID if special else 100 + zlib.crc32(text.encode()) % 32000
    return {"id": token_id, "text": text, "logprob": -0.25, "special": special}


def _validate(fake: FakeTgi, inputs: str, p: dict[str, Any], stream: bool) -> str | None:
    """The router's validation message for this request, or None when it is valid."""
    if stream and p.get("decoder_input_details"):
        return "`decoder_input_details` == true is not supported when streaming tokens"
    if p.get("temperature") is not None and p["temperature"] <= 0:
        return "`temperature` must be strictly positive"
    if p.get("top_p") is not None and not 0.0 < p["top_p"] < 1.0:
        return "`top_p` must be > 0.0 and < 1.0"
    if p.get("max_new_tokens") == 0:
        return "`max_new_tokens` must be strictly positive"
    stop = p.get("stop") or []
    if len(stop) > fake.max_stop_sequences:
        return f"`stop` supports up to {fake.max_stop_sequences} stop sequences. Given: {len(stop)}"
    if not inputs:
        return "`inputs` cannot be empty"
    n_input = len(inputs.split())
    max_new = p.get("max_new_tokens")
    if max_new is None:
        max_new = min(max(fake.max_total_tokens - n_input, 0), 1024)
    if n_input + max_new > fake.max_total_tokens:
        return (
            f"`inputs` tokens + `max_new_tokens` must be <= {fake.max_total_tokens}. "
            f"Given: {n_input} `inputs` tokens and {max_new} `max_new_tokens`"
        )
    if n_input > fake.max_input_tokens:
        return f"`inputs` must have less than {fake.max_input_tokens} tokens. Given: {n_input}"
    return None


def _plan(fake: FakeTgi, inputs: str, p: dict[str, Any]) -> _Plan:
    """Runs the script and applies TGI's stopping criteria."""
    texts, model_end = fake.script(inputs, p)
    if model_end not in ("eos_token", "length"):
        raise ValueError(f"script must end with 'eos_token' or 'length', not {model_end!r}")
    n_input = len(inputs.split())
    max_new = p.get("max_new_tokens") or min(max(fake.max_total_tokens - n_input, 0), 1024)
    candidates = [_token(t) for t in texts]
    if model_end == "eos_token":
        candidates.append(_token(EOS_TEXT, special=True))
    if not candidates:
        raise ValueError("a model generates at least one token: script an EOS or some tokens")
    stops = [s for s in (p.get("stop") or []) if s]
    tokens: list[dict[str, Any]] = []
    output = ""
    finish = "length"
    for token in candidates:
        tokens.append(token)
        if len(tokens) >= max_new:
            finish = "length"
            break
        if token["special"]:
            finish = "eos_token"
            break
        output += token["text"]
        if any(output.endswith(s) for s in stops):
            finish = "stop_sequence"
            break
    generated = "".join(t["text"] for t in tokens if not t["special"])
    if p.get("return_full_text"):
        generated = inputs + generated
    seed = p.get("seed")
    return _Plan(
        input_tokens=inputs.split(),
        tokens=tokens,
        generated_text=generated,
        finish_reason=finish,
        seed=(seed if seed is not None else 0) if p.get("do_sample") else None,
        details=bool(p.get("details", True)),
        decoder_input_details=bool(p.get("decoder_input_details")),
    )


def _handler(fake: FakeTgi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # as TGI (axum/hyper): keep-alive, chunked SSE

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, error_type: str, message: str) -> None:
            self._send(status, {"error": message, "error_type": error_type})

        def _client_gone(self) -> bool:
            """True once the client closed its end (what TGI sees as a dropped request)."""
            sock = self.connection
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        def _hung_up(self) -> None:
            fake.disconnects += 1
            fake.disconnected.set()
            self.close_connection = True

        def _generate_tokens(self, plan: _Plan) -> Iterator[dict[str, Any]]:
            """The plan's tokens, one per token_delay_s; stops early if the client left."""
            fake.generating.set()
            for token in plan.tokens:
                if fake.token_delay_s:
                    time.sleep(fake.token_delay_s)
                if self._client_gone():
                    self._hung_up()
                    return
                yield token

        def do_GET(self) -> None:
            if self.path == "/info":
                self._send(200, fake.info())
            elif self.path == "/health":
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._error(404, "not_found", f"no route GET {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length))
            except json.JSONDecodeError as exc:
                self._error(422, "validation", f"Failed to parse the request body as JSON: {exc}")
                return
            if self.path not in ("/", "/generate", "/generate_stream"):
                self._error(404, "not_found", f"no route POST {self.path}")
                return
            fake.requests.append(LoggedRequest(self.path, body))
            stream = self.path == "/generate_stream" or (
                self.path == "/" and bool(body.get("stream"))
            )
            inputs = str(body.get("inputs", ""))
            parameters = dict(body.get("parameters") or {})
            if stream:
                self._stream(inputs, parameters)
            else:
                self._generate(inputs, parameters, wrap=self.path == "/")

        def _generate(self, inputs: str, p: dict[str, Any], *, wrap: bool) -> None:
            if message := _validate(fake, inputs, p, stream=False):
                self._error(422, "validation", f"Input validation error: {message}")
                return
            try:
                plan = _plan(fake, inputs, p)
            except TgiScriptError as err:
                self._error(err.status or STATUS[err.error_type], err.error_type, err.message)
                return
            tokens = list(self._generate_tokens(plan))
            if len(tokens) < len(plan.tokens):
                return  # the client left: nothing to answer
            details = None
            if plan.details or plan.decoder_input_details:
                prefill = (
                    [
                        {"id": 100 + i, "text": t, "logprob": None if i == 0 else -1.0}
                        for i, t in enumerate(plan.input_tokens)
                    ]
                    if plan.decoder_input_details
                    else []
                )
                details = {
                    "finish_reason": plan.finish_reason,
                    "generated_tokens": len(tokens),
                    "seed": plan.seed,
                    "prefill": prefill,
                    "tokens": tokens,
                    "top_tokens": None,
                    "best_of_sequences": None,
                }
            response = {"generated_text": plan.generated_text, "details": details}
            fake.completed += 1
            self._send(
                200,
                [response] if wrap else response,
                headers={
                    "x-compute-type": "fake",
                    "x-prompt-tokens": str(len(plan.input_tokens)),
                    "x-generated-tokens": str(len(tokens)),
                },
            )

        def _stream(self, inputs: str, p: dict[str, Any]) -> None:
            message = _validate(fake, inputs, p, stream=True)
            plan: _Plan | None = None
            error: dict[str, str] | None = None
            if message:
                error = {"error": f"Input validation error: {message}", "error_type": "validation"}
            else:
                try:
                    plan = _plan(fake, inputs, p)
                except TgiScriptError as err:
                    if err.status is not None:
                        self._error(err.status, err.error_type, err.message)
                        return
                    error = {"error": err.message, "error_type": err.error_type}
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Accel-Buffering", "no")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if error is not None or plan is None:
                self._event(error or {})
                self._end_chunks()
                return
            index = 0
            last = len(plan.tokens)
            for token in self._generate_tokens(plan):
                index += 1
                final = index == last
                event = {
                    "index": index,
                    "token": token,
                    "top_tokens": [],
                    "generated_text": plan.generated_text if final else None,
                    "details": (
                        {
                            "finish_reason": plan.finish_reason,
                            "generated_tokens": last,
                            "seed": plan.seed,
                            "input_length": len(plan.input_tokens),
                        }
                        if final and plan.details
                        else None
                    ),
                }
                if final:
                    # Counted before the last event goes out: the client may act on it (and a
                    # test read the count) before this thread runs again.
                    fake.completed += 1
                if not self._event(event):
                    fake.completed -= final
                    return
            if index == last:
                self._end_chunks()

        def _event(self, payload: dict[str, Any]) -> bool:
            """Writes one SSE event (`data:{json}` + blank line, as axum does) as a chunk."""
            data = f"data:{json.dumps(payload)}\n\n".encode()
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                return True
            except (BrokenPipeError, ConnectionResetError):
                self._hung_up()
                return False

        def _end_chunks(self) -> None:
            """Ends the chunked body. The generation is over: a client that already closed
            after the final event (as text_generation does) did not hang up on it."""
            try:
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


@contextmanager
def fake_tgi(script: Script, **options: Any) -> Iterator[FakeTgi]:
    """A running fake on 127.0.0.1 (a free port); `base_url` is its root, as TGI's clients take."""
    fake = FakeTgi(script, **options)
    with serving(_handler(fake)) as root:
        fake.base_url = root
        yield fake
