"""gRPC clients of the three services, with the same message limits as the servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harmeval.generator.v1.generator_pb2_grpc import GeneratorServiceStub
from harmeval.judge.v1.judge_pb2_grpc import JudgeServiceStub
from harmeval.metrics.v1.metrics_pb2_grpc import MetricsServiceStub
from harmeval.settings import ClientSettings, CommonSettings


def channel(address: str, settings: CommonSettings) -> grpc.aio.Channel:
    limit = settings.max_message_bytes
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
        ],
    )


@dataclass
class Clients:
    generator: GeneratorServiceStub
    judge: JudgeServiceStub
    metrics: MetricsServiceStub


@asynccontextmanager
async def connect(settings: ClientSettings) -> AsyncIterator[Clients]:
    channels = [
        channel(a, settings)
        for a in (settings.generator_address, settings.judge_address, settings.metrics_address)
    ]
    try:
        yield Clients(
            GeneratorServiceStub(channels[0]),
            JudgeServiceStub(channels[1]),
            MetricsServiceStub(channels[2]),
        )
    finally:
        for ch in channels:
            await ch.close(None)


async def health_status(address: str, deadline_s: float = 2.0) -> str:
    """The server's overall health ("SERVING", "NOT_SERVING", ...) or "UNREACHABLE"."""
    async with grpc.aio.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=deadline_s)
        except grpc.aio.AioRpcError:
            return "UNREACHABLE"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
