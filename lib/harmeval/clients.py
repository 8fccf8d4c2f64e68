"""gRPC channels to the services, with the same message limits as the servers, and health.

Channels balance over every address a name resolves to (`round_robin`): in Kubernetes a
`dns:///` name of a headless Service lists every replica, and servers close connections after
`grpc_max_connection_age_s`, so clients re-resolve and new replicas get traffic too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harmeval.secrets import register_secret
from harmeval.settings import CommonSettings, SettingsError
from harmeval.tls import channel_credentials

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


class _WithToken:
    """A multi-callable sending `authorization: Bearer <token>` with every call."""

    def __init__(self, inner: Any, header: tuple[str, str]) -> None:
        self.inner, self.header = inner, header

    def __call__(self, request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
        return self.inner(request, metadata=(*(metadata or ()), self.header), **kwargs)


class _TokenChannel(grpc.aio.Channel):
    """A channel whose calls carry the token. Not gRPC's call credentials (refused on
    plaintext loopback channels, and a Python plugin thread per call) nor client
    interceptors (their intercepted-call path costs more CPU than the call itself adds)."""

    def __init__(self, inner: grpc.aio.Channel, token: str) -> None:
        self.inner = inner
        self.header = ("authorization", f"Bearer {token}")

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _WithToken(self.inner.unary_unary(*args, **kwargs), self.header)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _WithToken(self.inner.unary_stream(*args, **kwargs), self.header)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _WithToken(self.inner.stream_unary(*args, **kwargs), self.header)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _WithToken(self.inner.stream_stream(*args, **kwargs), self.header)

    async def __aenter__(self) -> _TokenChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.close(None)

    async def close(self, grace: float | None = None) -> None:
        await self.inner.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.inner.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.inner.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.inner.channel_ready()


def raw_channel(
    address: str, settings: CommonSettings, options: list[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """A channel with the process's TLS settings and token (any options, e.g. none)."""
    credentials = channel_credentials(settings)
    if credentials is None:
        inner = grpc.aio.insecure_channel(address, options=options)
    else:
        inner = grpc.aio.secure_channel(address, credentials, options=options)
    token = bearer_token(settings)
    return _TokenChannel(inner, token) if token else inner


def channel(address: str, settings: CommonSettings) -> grpc.aio.Channel:
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
