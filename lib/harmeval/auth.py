"""Authentication, authorisation and audit of every RPC: one server interceptor.

A caller is a bearer token (`authorization: Bearer hev_...` metadata) or, under mutual TLS,
its client certificate's common name mapped to a role by `HARMEVAL_AUTH_CERT_ROLES`. Health
checks stay open for probes; reflection needs a valid caller of any role; every other RPC
needs a role its rule allows. Reads of raw harmful text are audited: a JSON log line and a
Prometheus counter.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import grpc
from prometheus_client import Counter

from harmeval.access import ROLES, Rule, may_call
from harmeval.clients import STUDY_METADATA
from harmeval.interceptors import WrappingInterceptor
from harmeval.settings import CommonSettings, SettingsError
from harmeval.tokens import Principal, TokenError, TokenStore

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("harmeval.audit")
# Audit lines are written whatever HARMEVAL_LOG_LEVEL says: a quieter log must not hide reads.
audit_logger.setLevel(logging.INFO)

OPEN_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."

# The caller of the RPC being served (for handlers that record who did something).
CALLER: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("caller", default=None)

_RAW_READS: dict[str, Counter] = {}


def raw_text_reads(service: str) -> Counter:
    if service not in _RAW_READS:
        _RAW_READS[service] = Counter(
            f"harmeval_{service}_raw_text_reads",
            f"Calls to {service} RPCs that return raw harmful text, by method and caller role.",
            ["method", "role"],
        )
    return _RAW_READS[service]


def parse_cert_roles(text: str) -> dict[str, str]:
    """ "runner=operator,metrics=operator" -> {"runner": "operator", ...}."""
    roles: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, role = (s.strip() for s in item.partition("="))
        if not sep or not name or role not in ROLES:
            raise SettingsError(
                f"HARMEVAL_AUTH_CERT_ROLES: {item!r} is not common-name=role "
                f"(roles: {', '.join(sorted(ROLES))})"
            )
        roles[name] = role
    return roles


def _study_of(request: Any, metadata: Any = ()) -> str:
    """The study a request is about, when it names one or its caller says (the runner's
    `x-harmeval-study` metadata on the generations and verdicts it asks for a run)."""
    for key, value in metadata or ():
        if key == STUDY_METADATA:
            return unquote(str(value))[:200]
    if not hasattr(request, "DESCRIPTOR"):  # none, or bytes that did not decode
        return ""
    fields = request.DESCRIPTOR.fields_by_name
    for name in ("study", "study_name"):
        if name in fields and isinstance(getattr(request, name), str):
            return str(getattr(request, name))
    if "Study" in request.DESCRIPTOR.name and "name" in fields:
        return str(request.name)
    return ""


class AccessInterceptor(WrappingInterceptor):
    def __init__(self, service: str, rules: dict[str, Rule], settings: CommonSettings) -> None:
        super().__init__()
        self.service = service
        self.rules = rules
        self.tokens = TokenStore(settings.tokens_path)
        self.cert_roles = parse_cert_roles(settings.auth_cert_roles)
        self._raw_reads = raw_text_reads(service)

    def _caller(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal | str:
        """The authenticated caller, or why there is none."""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, token = str(value).partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return "malformed authorization metadata (expected 'Bearer <token>')"
                try:
                    return self.tokens.authenticate(token.strip())
                except TokenError as exc:
                    return str(exc)
        names = list(context.auth_context().get("x509_common_name") or ())
        if names:
            name = names[0].decode(errors="replace")
            # Unmapped: a known identity without a role (PERMISSION_DENIED below).
            return Principal(name, self.cert_roles.get(name, ""), "certificate")
        return "no credentials: send 'authorization: Bearer <token>' or a client certificate"

    async def _admit(self, method: str, request: Any, context: Any) -> None:
        """Aborts the RPC unless the caller may make it; audits raw-text reads."""
        caller = self._caller(context)
        if isinstance(caller, str):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, caller)
            return
        if caller.role not in ROLES:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"client certificate {caller.name!r} has no role (HARMEVAL_AUTH_CERT_ROLES)",
            )
        rule = self.rules.get(method)
        if rule is not None:
            if not may_call(caller.role, rule):
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{caller.name} ({caller.role}) may not call {method.rsplit('/', 1)[-1]}: "
                    f"it needs the {rule.role} role",
                )
            if rule.raw_text:
                short = method.rsplit("/", 1)[-1]
                self._raw_reads.labels(short, caller.role).inc()
                audit_logger.info(
                    "raw text read",
                    extra={
                        "audit": "raw_text_read",
                        "who": caller.name,
                        "role": caller.role,
                        "via": caller.via,
                        "rpc": method,
                        "study": _study_of(request, context.invocation_metadata()),
                    },
                )
        CALLER.set(caller)

    def covers(self, method: str) -> bool:
        return not method.startswith(OPEN_PREFIX)

    def wrap(self, method: str, handler: Any) -> Any:
        """`handler` admitting only callers who may call `method` (built once per method)."""
        admit = self._admit
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            unary_unary = handler.unary_unary

            async def uu(request: Any, context: Any) -> Any:
                await admit(method, request, context)
                return await unary_unary(request, context)

            return grpc.unary_unary_rpc_method_handler(uu, **kwargs)
        if handler.unary_stream is not None:
            unary_stream = handler.unary_stream

            async def us(request: Any, context: Any) -> AsyncIterator[Any]:
                await admit(method, request, context)
                async for item in unary_stream(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(us, **kwargs)
        if handler.stream_stream is not None:  # reflection
            stream_stream = handler.stream_stream

            async def ss(requests: Any, context: Any) -> AsyncIterator[Any]:
                await admit(method, None, context)
                async for item in stream_stream(requests, context):
                    yield item

            return grpc.stream_stream_rpc_method_handler(ss, **kwargs)
        stream_unary = handler.stream_unary

        async def su(requests: Any, context: Any) -> Any:
            await admit(method, None, context)
            return await stream_unary(requests, context)

        return grpc.stream_unary_rpc_method_handler(su, **kwargs)
