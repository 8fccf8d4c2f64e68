"""Prometheus metrics for every RPC, recorded by one server interceptor.

Names follow `harmeval_<service>_requests_total` so dashboards can tell services apart
without relabelling. Health checks and reflection are not counted: probes would swamp them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram

from harmeval.interceptors import WrappingInterceptor

_UNCOUNTED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")

# Model calls take seconds, so the default buckets (capped at 10 s) would hide the tail.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True)
class RpcMetrics:
    requests: Counter
    errors: Counter
    duration: Histogram
    in_flight: Gauge


_BY_SERVICE: dict[str, RpcMetrics] = {}


def rpc_metrics(service: str) -> RpcMetrics:
    """One set per service and process (tests run several services in one process)."""
    if service not in _BY_SERVICE:
        _BY_SERVICE[service] = RpcMetrics(
            requests=Counter(
                f"harmeval_{service}_requests",
                f"RPCs handled by the {service} service, by method and status code.",
                ["method", "code"],
            ),
            errors=Counter(
                f"harmeval_{service}_errors",
                f"RPCs of the {service} service that ended with a status other than OK.",
                ["method", "code"],
            ),
            duration=Histogram(
                f"harmeval_{service}_request_duration_seconds",
                f"Time to handle one RPC of the {service} service.",
                ["method"],
                buckets=LATENCY_BUCKETS,
            ),
            in_flight=Gauge(
                f"harmeval_{service}_requests_in_flight",
                f"RPCs the {service} service is handling right now (shows draining).",
                ["method"],
            ),
        )
    return _BY_SERVICE[service]


def _status_name(context: Any, error: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if error is None:
        return "OK"
    if isinstance(error, asyncio.CancelledError):
        # The caller went away, or its deadline passed: gRPC cancels the handler either way.
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        return "DEADLINE_EXCEEDED" if expired else "CANCELLED"
    return "UNKNOWN"


class MetricsInterceptor(WrappingInterceptor):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._metrics = rpc_metrics(service)

    def _record(self, method: str, code: str, started: float) -> None:
        self._metrics.in_flight.labels(method).dec()
        self._metrics.requests.labels(method, code).inc()
        if code != "OK":
            self._metrics.errors.labels(method, code).inc()
        self._metrics.duration.labels(method).observe(time.perf_counter() - started)

    def covers(self, method: str) -> bool:
        return not method.startswith(_UNCOUNTED_PREFIXES)

    def wrap(self, full_method: str, handler: Any) -> Any:
        method = full_method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: Any) -> Any:
                started, error = time.perf_counter(), None
                self._metrics.in_flight.labels(method).inc()
                try:
                    return await inner(request, context)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    self._record(method, _status_name(context, error), started)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                started, error = time.perf_counter(), None
                self._metrics.in_flight.labels(method).inc()
                try:
                    async for item in inner_stream(request, context):
                        yield item
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    self._record(method, _status_name(context, error), started)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
