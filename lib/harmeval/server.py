"""The one server skeleton all four services use.

`create_server()` binds and registers everything but does not start, so tests can bind
`127.0.0.1:0`; `serve()` is the process entry point: health NOT_SERVING until the servicer's
heavy resources are ready, SIGTERM drains in-flight RPCs, resources close in `finally`.
Every RPC but health passes the access interceptor (harmeval.auth); the port is TLS when a
certificate is configured, plaintext only on loopback unless explicitly allowed.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import _async as health_aio  # what `health.aio` re-exports
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from psycopg_pool import AsyncConnectionPool

from harmeval.access import rules_of
from harmeval.auth import AccessInterceptor
from harmeval.boundary import BoundaryInterceptor
from harmeval.db import DatabaseProbe, Schema, open_database
from harmeval.log import configure_logging
from harmeval.observability import MetricsInterceptor
from harmeval.settings import CommonSettings, SettingsError
from harmeval.tls import check_plaintext_bind, server_credentials

logger = logging.getLogger(__name__)


class Servicer(abc.ABC):
    """Base of every service implementation. Heavy resources (database pool, models, clients)
    open in `startup` and close when its stack unwinds; `healthy` turning False (e.g. a dead
    in-process engine) makes the watchdog report NOT_SERVING, so Kubernetes restarts the pod."""

    healthy: bool = True
    # False while the database does not answer (the watchdog's probe): RPCs fail UNAVAILABLE at
    # once and health says NOT_SERVING, until it answers again.
    available: bool = True
    _database_probe: DatabaseProbe | None = None

    @abc.abstractmethod
    async def startup(self, stack: AsyncExitStack) -> None:
        """Opens the service's resources, registering their cleanup on `stack`."""

    async def database(
        self, stack: AsyncExitStack, settings: CommonSettings, schema: Schema
    ) -> AsyncConnectionPool:
        """The service's pool (its schema migrated), closed with `stack`; the database is
        watched from then on (`available`)."""
        pool = await stack.enter_async_context(open_database(settings, schema))
        assert isinstance(pool.conninfo, str)  # open_database passes the URL
        probe = self._database_probe = DatabaseProbe(pool.conninfo)
        stack.push_async_callback(probe.close)
        return pool

    async def serving(self) -> bool:
        """Whether the service can serve now (asked every second by the watchdog)."""
        return self._database_probe is None or await self._database_probe.ok()

    async def drain(self) -> None:  # noqa: B027 (deliberately empty: most services need none)
        """Called on SIGTERM before the server drains its RPCs: stop taking new background
        work and end endless streams, so the drain ends within the grace period."""


@dataclass(frozen=True)
class ServiceSpec:
    """What the skeleton needs to know about one service."""

    # Short name: "generator", "judge", "metrics", "runner" (metric names and logs).
    name: str
    descriptor: ServiceDescriptor
    add_to_server: Callable[[Any, grpc.aio.Server], None]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    spec: ServiceSpec
    # The plaintext health-only server for probes (settings.health_address), if any.
    health_server: grpc.aio.Server | None = None
    health_port: int = 0

    async def start(self) -> None:
        await self.server.start()
        if self.health_server is not None:
            await self.health_server.start()

    async def stop(self, grace: float | None) -> None:
        if self.health_server is not None:
            await self.health_server.stop(grace)
        await self.server.stop(grace)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        # "" is the whole server; Kubernetes probes ask for it.
        for name in ("", self.spec.descriptor.full_name):
            await self.health.set(name, status)

    async def set_available(self, available: bool) -> None:
        """Whether the service's dependencies (its database) answer: reported on the
        service's own name, which readiness probes ask, and not on "", which liveness asks:
        a database outage must take pods out of rotation, not restart every one of them."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if available
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set(self.spec.descriptor.full_name, status)


async def create_server(
    spec: ServiceSpec, servicer: Servicer, address: str, settings: CommonSettings
) -> RunningServer:
    limit = settings.max_message_bytes
    limit_rpcs = settings.grpc_max_concurrent_rpcs
    # Checked before binding: a service with an RPC lacking a rule must not start.
    rules = rules_of(spec.descriptor)
    credentials = server_credentials(settings)
    if credentials is None:
        check_plaintext_bind(address, settings)
    if settings.tls_client_ca_file is None and not settings.tokens_path.exists():
        raise SettingsError(
            f"{spec.name}: no way to authenticate callers: {settings.tokens_path} does not "
            "exist (make it with `harmeval token create --role operator`, or set "
            "HARMEVAL_AUTH_TOKENS_FILE or mutual TLS)"
        )
    server = grpc.aio.server(
        # Metrics outermost, so refused calls are counted with their code; the boundary
        # innermost, around the handlers themselves.
        interceptors=[
            MetricsInterceptor(spec.name),
            AccessInterceptor(spec.name, rules, settings),
            BoundaryInterceptor(lambda: servicer.available),
        ],
        maximum_concurrent_rpcs=limit_rpcs,
        options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            # gRPC enables SO_REUSEPORT by default: a second server on a busy port would
            # "start" and silently share (or steal) traffic. Fail loudly instead.
            ("grpc.so_reuseport", 0),
            # Calls that arrived while the handlers are busy wait here, not CANCELLED: gRPC's
            # default (1,000) cancelled 6-9% of a 2,000-call burst before any handler saw
            # them. Past maximum_concurrent_rpcs a call is refused with RESOURCE_EXHAUSTED.
            ("grpc.server.max_pending_requests", max(10_000, 8 * limit_rpcs)),
            ("grpc.server.max_pending_requests_hard_limit", max(20_000, 16 * limit_rpcs)),
            ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_s * 1000)),
            # Calls in flight when the age is reached may finish: a chunk's generation can
            # take minutes on a CPU. Streams longer than this (WatchRun) are reconnected.
            ("grpc.max_connection_age_grace_ms", CONNECTION_AGE_GRACE_MS),
            # Accept the clients' keepalive pings (harmeval.clients.KEEPALIVE_OPTIONS).
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    spec.add_to_server(servicer, server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            spec.descriptor.full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise RuntimeError(f"cannot bind {spec.name} service to {address}")
    running = RunningServer(server, port, health_servicer, spec)
    if settings.health_address:
        # Health only, so plaintext is harmless here: kubelet's gRPC probes cannot do TLS.
        running.health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, running.health_server)
        running.health_port = running.health_server.add_insecure_port(settings.health_address)
        if running.health_port == 0:
            raise RuntimeError(f"cannot bind {spec.name} health to {settings.health_address}")
    await running.set_serving(False)
    return running


async def serve(
    spec: ServiceSpec, servicer: Servicer, address: str, prometheus_port: int, settings: Any
) -> None:
    """Runs one service until SIGTERM/SIGINT."""
    configure_logging(settings.log_level, settings.log_format)
    # Heavy work runs in threads (YAML, agreement tables, large requests); the event loop
    # waits up to this long for the GIL at each step of an RPC, health checks included.
    # Python's 5 ms made a health check wait 80-110 ms behind a 300,000-value request.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    start_http_server(prometheus_port, addr=address.rsplit(":", 1)[0].strip("[]") or "0.0.0.0")
    running = await create_server(spec, servicer, address, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await running.start()
    logger.info(
        "%s service listening on %s (port %d, %s)",
        spec.name,
        address,
        running.port,
        "TLS" if settings.tls_cert_file else "plaintext",
    )
    async with AsyncExitStack() as stack:
        try:
            await servicer.startup(stack)
            tune_garbage_collector()
            await running.set_serving(True)
            logger.info("%s service ready", spec.name)
            watchdog = asyncio.create_task(_watchdog(servicer, running, stop))
            await stop.wait()
            watchdog.cancel()
        finally:
            logger.info("%s service draining (grace %.0fs)", spec.name, settings.grace_seconds)
            # Flip health first so load balancers stop sending new work while we drain.
            with contextlib.suppress(Exception):
                await running.set_serving(False)
            with contextlib.suppress(Exception):
                await servicer.drain()
            await running.stop(settings.grace_seconds)
    logger.info("%s service stopped", spec.name)


T = TypeVar("T")

# Longer than any call the services make to each other (the runner's deadline is 600 s).
CONNECTION_AGE_GRACE_MS = 900_000

# A young-generation collection every 10,000 allocations instead of CPython's 700: with
# hundreds of requests in flight, each allocating hundreds of short-lived objects, the default
# collects thousands of times a second, and the older generations it then sweeps hold every
# in-flight request (bench/judge_service_throughput.py: ratio 0.74 -> 0.86 at 256 concurrent).
GC_THRESHOLDS = (10_000, 10, 10)
# The GIL handed over every millisecond (Python's default: 5 ms); see serve().
SWITCH_INTERVAL_S = 0.001


def tune_garbage_collector() -> None:
    """Called once the service is ready: what start-up allocated (modules, models, pools) is
    kept for the process's lifetime, so it is frozen out of every later collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


WATCHDOG_INTERVAL_S = 1.0


async def _watchdog(servicer: Servicer, running: RunningServer, stop: asyncio.Event) -> None:
    """Reports NOT_SERVING while the servicer cannot serve: for good when `healthy` turns
    False (e.g. its in-process engine died, so Kubernetes restarts the pod), for a while when
    its database does not answer (back to SERVING when it does)."""
    while not stop.is_set():
        if not servicer.healthy:
            logger.error("%s service unhealthy: reporting NOT_SERVING", running.spec.name)
            await running.set_serving(False)
            return
        try:
            available = await servicer.serving()
        except Exception:  # a broken probe must not end the watchdog (engine checks too)
            logger.exception("%s service: database probe failed", running.spec.name)
            available = False
        if available != servicer.available:
            servicer.available = available
            if available:
                logger.warning("%s service: database answers again", running.spec.name)
            else:
                logger.error("%s service: database unreachable", running.spec.name)
            await running.set_available(available)
        await asyncio.sleep(WATCHDOG_INTERVAL_S)


async def require_ready(
    value: T | None, context: grpc.aio.ServicerContext[Any, Any], what: str
) -> T:
    """Returns a resource opened in `startup`, or fails the RPC while the service still starts."""
    if value is None:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{what} is still starting; retry shortly")
    assert value is not None
    return value
