"""Stubs of the four services, as the CLI and other Python callers use them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from harmeval.clients import channel
from harmeval.generator.v1.generator_pb2_grpc import GeneratorServiceStub
from harmeval.judge.v1.judge_pb2_grpc import JudgeServiceStub
from harmeval.metrics.v1.metrics_pb2_grpc import MetricsServiceStub
from harmeval.runner.v1.runner_pb2_grpc import RunnerServiceStub
from harmeval_client.settings import ClientSettings


@dataclass
class Clients:
    generator: GeneratorServiceStub
    judge: JudgeServiceStub
    metrics: MetricsServiceStub
    runner: RunnerServiceStub


@asynccontextmanager
async def connect(settings: ClientSettings) -> AsyncIterator[Clients]:
    channels = [
        channel(a, settings)
        for a in (
            settings.generator_address,
            settings.judge_address,
            settings.metrics_address,
            settings.runner_address,
        )
    ]
    try:
        yield Clients(
            GeneratorServiceStub(channels[0]),
            JudgeServiceStub(channels[1]),
            MetricsServiceStub(channels[2]),
            RunnerServiceStub(channels[3]),
        )
    finally:
        for ch in channels:
            await ch.close(None)
