"""The edge of every RPC, in the one server skeleton: what a handler cannot handle itself
never reaches the caller as UNKNOWN.

- Bytes that do not decode as the request message: INVALID_ARGUMENT (gRPC's default is
  UNKNOWN, or INTERNAL, with no word on what was wrong).
- A request that no RPC can take (a NUL in a string, a non-finite number, an enum value the
  contract does not define; `harmeval.request_checks`): INVALID_ARGUMENT naming the field,
  before any handler runs. What is right or wrong for one RPC only stays in its handler.
- The database unreachable (psycopg's OperationalError, a pool that cannot hand out a
  connection): UNAVAILABLE, which clients retry.
- Anything else unexpected: INTERNAL with a correlation id that the log line of its stack
  trace carries too; the caller never sees the stack text.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import psycopg
import psycopg_pool
from google.protobuf.message import DecodeError

from harmeval.interceptors import WrappingInterceptor
from harmeval.request_checks import LARGE_BYTES, request_problems
from harmeval.validation import listed

logger = logging.getLogger(__name__)

# SQLSTATE classes of a database that is away, not of a statement that is wrong: connection
# exceptions, insufficient resources, operator intervention (shutdown, restart).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


# A transaction the database gave up on while others went on (serialisation failure,
# deadlock): nothing was stored, and the same call again can succeed.
_ABORTED_SQLSTATES = ("40001", "40P01")


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached now (the caller should retry),
    rather than that a statement failed (e.g. a value too large for an index: a bug)."""
    if isinstance(error, psycopg_pool.PoolTimeout):
        return True
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    # 57014: a statement cancelled by statement_timeout, i.e. the database too slow now.
    return state is None or state.startswith(_UNAVAILABLE_SQLSTATES) or state == "57014"


# Error details quote what the caller sent: never more than this (a 1 MB name echoed whole
# would turn the answer into a metadata-size RESOURCE_EXHAUSTED).
MAX_DETAILS_CHARS = 1000


def capped(details: str) -> str:
    if len(details) <= MAX_DETAILS_CHARS:
        return details
    return f"{details[:MAX_DETAILS_CHARS]}… [{len(details) - MAX_DETAILS_CHARS} more characters]"


class _CappedContext:
    """The handler's context, whose `abort` quotes at most MAX_DETAILS_CHARS (details set
    once the handler has aborted cannot be changed any more)."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def abort(self, code: grpc.StatusCode, details: str = "", *args: Any) -> None:
        await self._context.abort(code, capped(details), *args)


class Undecodable:
    """Stands for a request whose bytes did not decode (the handler is not called)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class _Large:
    """A request too large to decode on the event loop: decoded in a thread at admission."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Received:
    """A decoded request with the bytes it came from (the checks skip every string when the
    bytes hold no zero byte). Reads of its fields before admission (the access interceptor's
    audit line) go to the message."""

    __slots__ = ("data", "message")

    def __init__(self, message: Any, data: bytes) -> None:
        self.message, self.data = message, data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.message, name)


def _decode(deserializer: Callable[[bytes], Any], data: bytes) -> Any:
    try:
        return deserializer(data)
    except (DecodeError, ValueError, RecursionError) as exc:
        return Undecodable(exc)


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        if len(data) > LARGE_BYTES:
            return _Large(data)
        decoded = _decode(deserializer, data)
        return decoded if isinstance(decoded, Undecodable) else _Received(decoded, data)

    return deserialize


async def _refuse(error: BaseException, method: str, context: Any) -> None:
    """Ends the RPC with the status `error` calls for."""
    if isinstance(error, psycopg.Error) and error.sqlstate in _ABORTED_SQLSTATES:
        logger.warning("%s: transaction aborted by the database: %s", method, error)
        await context.abort(grpc.StatusCode.ABORTED, "the database aborted the transaction; retry")
    if database_unavailable(error):
        logger.warning("%s: database unavailable: %s", method, error)
        await context.abort(
            grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry shortly"
        )
    incident = uuid.uuid4().hex[:12]
    logger.error("%s failed unexpectedly (incident %s)", method, incident, exc_info=error)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error (incident {incident} in the service's log)"
    )


async def _admitted(request: Any, deserializer: Callable[[bytes], Any], context: Any) -> Any:
    """The request, decoded and checked (or the RPC ends INVALID_ARGUMENT). Large ones are
    decoded and walked off the event loop: health must answer meanwhile."""
    data = None
    if isinstance(request, _Large):
        data = request.data
        request = await asyncio.to_thread(_decode, deserializer, data)
    elif isinstance(request, _Received):
        data, request = request.data, request.message
    if isinstance(request, Undecodable):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is not a valid message of this RPC's type: {request.error}"[:300],
        )
    if data is not None and len(data) > LARGE_BYTES:
        problems = await asyncio.to_thread(request_problems, request, data)
    else:
        problems = request_problems(request, data)
    if problems:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, capped(listed(problems)))
    return request


class BoundaryInterceptor(WrappingInterceptor):
    def __init__(self, available: Callable[[], bool] = lambda: True) -> None:
        # False while the service's database does not answer: refuse at once, not after a
        # pool timeout.
        super().__init__()
        self.available = available

    def covers(self, method: str) -> bool:
        # Health and reflection are gRPC's own, need no database, and must answer during an
        # outage (health is how the outage shows).
        return not method.startswith("/grpc.")

    def wrap(self, method: str, handler: Any) -> Any:
        available = self.available
        deserializer = handler.request_deserializer

        async def admit(request: Any, context: Any) -> Any:
            request = await _admitted(request, deserializer, context)
            if not available():
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry shortly"
                )
            return request

        kwargs = {
            "request_deserializer": _tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            unary_unary = handler.unary_unary

            async def uu(request: Any, context: Any) -> Any:
                try:
                    request = await admit(request, context)
                    return await unary_unary(request, _CappedContext(context))
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _refuse(exc, method, context)

            return grpc.unary_unary_rpc_method_handler(uu, **kwargs)
        if handler.unary_stream is not None:
            unary_stream = handler.unary_stream

            async def us(request: Any, context: Any) -> AsyncIterator[Any]:
                try:
                    request = await admit(request, context)
                    async for item in unary_stream(request, _CappedContext(context)):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _refuse(exc, method, context)

            return grpc.unary_stream_rpc_method_handler(us, **kwargs)
        # Client-streaming RPCs (reflection): their messages are decoded as they arrive.
        return handler
