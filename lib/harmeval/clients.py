"""gRPC channels to the services, with the same message limits as the servers, and health."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harmeval.settings import CommonSettings


def channel(address: str, settings: CommonSettings) -> grpc.aio.Channel:
    limit = settings.max_message_bytes
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
        ],
    )


async def health_status(address: str, deadline_s: float = 2.0) -> str:
    """The server's overall health ("SERVING", "NOT_SERVING", ...) or "UNREACHABLE"."""
    async with grpc.aio.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=deadline_s)
        except grpc.aio.AioRpcError:
            return "UNREACHABLE"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
