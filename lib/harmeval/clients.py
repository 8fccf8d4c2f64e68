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
    if settings.token:
        return settings.token.strip()
    if settings.token_file is not None:
        try:
            return settings.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"HARMEVAL_TOKEN_FILE {settings.token_file}: {exc}") from exc
    return ""


class _Bearer:
    """Adds `authorization: Bearer <token>` to every call. Interceptors rather than call
    credentials: gRPC refuses call credentials on plaintext channels (local loopback)."""

    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self.header)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# gRPC files an interceptor under the first call kind it implements: one class per kind.
class _BearerUnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _BearerUnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _BearerStreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _BearerStreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


_BEARERS = (_BearerUnaryUnary, _BearerUnaryStream, _BearerStreamUnary, _BearerStreamStream)


def raw_channel(
    address: str, settings: CommonSettings, options: list[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """A channel with the process's TLS settings and token (any options, e.g. none)."""
    token = bearer_token(settings)
    interceptors: Any = [kind(token) for kind in _BEARERS] if token else None
    credentials = channel_credentials(settings)
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)


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
