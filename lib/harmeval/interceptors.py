"""The shape the server skeleton's interceptors share: each wraps the handlers of the methods
it covers, and builds a method's wrapper once (not on every call)."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import Any

import grpc


class WrappingInterceptor(grpc.aio.ServerInterceptor, abc.ABC):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def covers(self, method: str) -> bool:
        """Whether `method` (`/package.Service/Method`) is wrapped at all."""
        return True

    @abc.abstractmethod
    def wrap(self, method: str, handler: Any) -> Any:
        """`handler` (an RpcMethodHandler; its behaviours are coroutines in grpc.aio) wrapped:
        a handler of the same kind and serializers, or `handler` itself."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not self.covers(method):
            return handler
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, self.wrap(method, handler))
        return cached[1]
