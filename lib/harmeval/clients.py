"""gRPC channels to the services, with the same message limits as the servers, and health.

Channels balance over every address a name resolves to (`round_robin`): in Kubernetes a
`dns:///` name of a headless Service lists every replica, and servers close connections after
`grpc_max_connection_age_s`, so clients re-resolve and new replicas get traffic too.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harmeval.secrets import register_secret
from harmeval.settings import CommonSettings, SettingsError
from harmeval.tls import channel_credentials, is_loopback

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Pings keep idle connections through NAT and load-balancer timeouts and find dead peers.
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def bearer_token(settings: CommonSettings) -> str:
    """The token this process sends: `token`, else the contents of `token_file`, else none."""
    token = settings.token.strip()
    if not token and settings.token_file is not None:
        try:
            token = settings.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"HARMEVAL_TOKEN_FILE {settings.token_file}: {exc}") from exc
    register_secret(token)  # never in this process's logs or errors
    return token


# The study the calls this task makes are for (set by the runner's workers): sent along as
# `x-harmeval-study` metadata so the services' audit lines can name it.
CURRENT_STUDY: contextvars.ContextVar[str] = contextvars.ContextVar("study", default="")
STUDY_METADATA = "x-harmeval-study"

# How often a channel looks whether its certificate, key, CA or token file changed.
CREDENTIALS_CHECK_INTERVAL_S = 10.0
# Calls in flight on a channel replaced by new credentials get this long to finish.
REPLACED_CHANNEL_GRACE_S = 900.0


def _stamps(paths: list[Path]) -> tuple[tuple[int, int], ...]:
    return tuple((s.st_mtime_ns, s.st_size) for s in (p.stat() for p in paths))


class _Call:
    """A stub's multi-callable on a `Channel`: on the channel's current connection, with its
    current token (one attribute lookup per call when nothing changed)."""

    def __init__(self, channel: Channel, kind: str, args: Any, kwargs: Any) -> None:
        self.channel, self.kind, self.args, self.kwargs = channel, kind, args, kwargs
        self.generation = -1
        self.inner: Any = None

    def __call__(self, request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
        ch = self.channel
        ch.refresh()
        if self.generation != ch.generation:
            self.inner = getattr(ch.inner, self.kind)(*self.args, **self.kwargs)
            self.generation = ch.generation
        if ch.header is not None:
            metadata = (*(metadata or ()), ch.header)
        if study := CURRENT_STUDY.get():
            # Metadata values are ASCII: a study's name travels percent-encoded.
            metadata = (*(metadata or ()), (STUDY_METADATA, quote(study, safe="")))
        return self.inner(request, metadata=metadata, **kwargs)


class Channel(grpc.aio.Channel):
    """A channel with the process's TLS settings and bearer token that follows their files:
    when cert-manager renews the client certificate or a mounted token changes, new calls go
    over a new connection made with them (calls in flight finish on the old one).

    The token travels as call metadata, not as gRPC call credentials (refused on plaintext
    loopback channels, and a Python plugin thread per call) nor through client interceptors
    (their intercepted-call path costs more CPU than the call itself adds)."""

    def __init__(
        self, address: str, settings: CommonSettings, options: list[tuple[str, Any]] | None
    ) -> None:
        self.address, self.settings, self.options = address, settings, options
        s = settings
        watched = [s.tls_ca_file, s.tls_client_cert_file, s.tls_client_key_file]
        if not s.token:
            watched.append(s.token_file)
        self.files = [p for p in watched if p is not None]
        self.generation = 0
        self._retired: set[asyncio.Task[None]] = set()
        self._checked = time.monotonic()
        self._stamp = _stamps(self.files)
        self.inner, self.header = self._connect()

    def _connect(self) -> tuple[grpc.aio.Channel, tuple[str, str] | None]:
        s, address = self.settings, self.address
        credentials = channel_credentials(s)
        token = bearer_token(s)
        if token and credentials is None and not (is_loopback(address) or s.allow_plaintext):
            raise SettingsError(
                f"refusing to send a token in plaintext to {address}: set HARMEVAL_TLS_CA_FILE "
                "(--ca), or HARMEVAL_ALLOW_PLAINTEXT=true behind a trusted proxy"
            )
        if credentials is None:
            inner = grpc.aio.insecure_channel(address, options=self.options)
        else:
            inner = grpc.aio.secure_channel(address, credentials, options=self.options)
        return inner, ("authorization", f"Bearer {token}") if token else None

    def refresh(self) -> None:
        """Reconnects with the files' new contents when they changed (looked at most every
        CREDENTIALS_CHECK_INTERVAL_S)."""
        now = time.monotonic()
        if not self.files or now - self._checked < CREDENTIALS_CHECK_INTERVAL_S:
            return
        self._checked = now
        try:
            stamp = _stamps(self.files)
            if stamp == self._stamp:
                return
            inner, header = self._connect()
        except (OSError, SettingsError) as exc:
            # Mid-rotation (one file replaced, not yet the other): keep the last good ones.
            logger.warning("client credentials not reloaded yet: %s", exc)
            return
        old, self.inner, self.header, self._stamp = self.inner, inner, header, stamp
        self.generation += 1
        logger.info("client credentials for %s changed: new connections use them", self.address)
        task = asyncio.get_running_loop().create_task(old.close(REPLACED_CHANNEL_GRACE_S))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Call(self, "unary_unary", args, kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Call(self, "unary_stream", args, kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _Call(self, "stream_unary", args, kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Call(self, "stream_stream", args, kwargs)

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(None)

    async def close(self, grace: float | None = None) -> None:
        for task in list(self._retired):
            task.cancel()
        await self.inner.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.inner.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.inner.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.inner.channel_ready()


def raw_channel(
    address: str, settings: CommonSettings, options: list[tuple[str, Any]] | None = None
) -> Channel:
    """A channel with the process's TLS settings and token (any options, e.g. none)."""
    return Channel(address, settings, options)


def channel(address: str, settings: CommonSettings) -> Channel:
    limit = settings.max_message_bytes
    return raw_channel(
        address,
        settings,
        [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.lb_policy_name", "round_robin"),
            *KEEPALIVE_OPTIONS,
        ],
    )


async def health_status(
    address: str, settings: CommonSettings | None = None, deadline_s: float = 2.0
) -> str:
    """The server's overall health ("SERVING", "NOT_SERVING", ...) or "UNREACHABLE"."""
    settings = settings or CommonSettings()
    async with raw_channel(address, settings) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=deadline_s)
        except grpc.aio.AioRpcError:
            return "UNREACHABLE"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


# An owner's refusals that mean the same to the caller's caller: passed through with their code
# (not NOT_FOUND: what the owner did not find is rarely what the caller asked for).
PASSED_THROUGH = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    }
)
# An owner's RPC never waits longer than this, even for a caller with no deadline (the import
# of the seed study's 12,000 labels takes about 2 s).
OWNER_DEADLINE_S = 300.0


async def call_owner(
    method: Callable[..., Awaitable[T]],
    request: Any,
    owner: str,
    context: grpc.aio.ServicerContext[Any, Any],
    passed_through: frozenset[grpc.StatusCode] = PASSED_THROUGH,
) -> T:
    """Another service's RPC `method(request)` inside an RPC being served, within that RPC's
    deadline (capped). The owner's refusals fail the RPC with the same code; anything else it
    answers is the caller's fault: INTERNAL, never UNKNOWN or a misleading code."""
    remaining = context.time_remaining()
    deadline = OWNER_DEADLINE_S if remaining is None else min(remaining, OWNER_DEADLINE_S)
    try:
        return await method(request, timeout=deadline)
    except grpc.aio.AioRpcError as exc:
        code = exc.code() if exc.code() in passed_through else grpc.StatusCode.INTERNAL
        await context.abort(code, f"{owner} service: {exc.details()}")
        raise  # abort raises; this keeps the type checker informed
