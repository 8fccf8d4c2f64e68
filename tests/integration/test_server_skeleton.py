"""The shared server skeleton: health, reflection, Prometheus metrics per RPC."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harmeval.clients import raw_channel
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from harmeval.server import create_server
from harmeval_metrics.service import SPEC, MetricsServicer
from harmeval_metrics.settings import MetricsSettings
from tests.credentials import client_settings, secured


def sample(name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_health_reflection_and_metrics(database_url: str, tmp_path: Path) -> None:
    settings = secured(MetricsSettings(database_url=database_url, data_dir=tmp_path))
    servicer = MetricsServicer(settings)
    srv = await create_server(SPEC, servicer, "127.0.0.1:0", settings)
    await srv.start()
    address = f"127.0.0.1:{srv.port}"
    async with raw_channel(address, client_settings()) as ch, AsyncExitStack() as stack:
        health = health_pb2_grpc.HealthStub(ch)
        stub = metrics_pb2_grpc.MetricsServiceStub(ch)
        for service in ("", "harmeval.metrics.v1.MetricsService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

        # Before resources are open, RPCs fail cleanly instead of crashing.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetAgreement(metrics_pb2.GetAgreementRequest(study="x"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE

        await servicer.startup(stack)
        await srv.set_serving(True)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        reflect = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name async for r in responses for s in r.list_services_response.service}
        assert {"harmeval.metrics.v1.MetricsService", "grpc.health.v1.Health"} <= names

        labels_ok = {"method": "RegisterStudy", "code": "INVALID_ARGUMENT"}
        before = sample("harmeval_metrics_requests_total", labels_ok)
        before_err = sample("harmeval_metrics_errors_total", labels_ok)
        before_hist = sample(
            "harmeval_metrics_request_duration_seconds_count", {"method": "RegisterStudy"}
        )
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.RegisterStudy(metrics_pb2.RegisterStudyRequest(name=""))
        assert sample("harmeval_metrics_requests_total", labels_ok) == before + 3
        assert sample("harmeval_metrics_errors_total", labels_ok) == before_err + 3
        assert (
            sample("harmeval_metrics_request_duration_seconds_count", {"method": "RegisterStudy"})
            == before_hist + 3
        )
        # Health checks are not counted.
        assert sample("harmeval_metrics_requests_total", {"method": "Check"}) == 0

        await srv.set_serving(False)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await srv.stop(0)


async def test_busy_port_is_an_error(database_url: str, tmp_path: Path) -> None:
    settings = secured(MetricsSettings(database_url=database_url, data_dir=tmp_path))
    first = await create_server(SPEC, MetricsServicer(settings), "127.0.0.1:0", settings)
    with pytest.raises(RuntimeError, match="bind to address"):
        await create_server(SPEC, MetricsServicer(settings), f"127.0.0.1:{first.port}", settings)
    await first.stop(0)
