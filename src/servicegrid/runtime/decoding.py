"""Undecodable request bytes answer INVALID_ARGUMENT instead of grpc's own INTERNAL/UNKNOWN.

grpc deserializes a request before any interceptor runs, so a malformed body
never reaches servicegrid's error mapping. :func:`guarded` registers a
generated ``add_*Servicer_to_server`` through a stand-in server that wraps
each unary method's request deserializer: a body that does not parse reaches
the method as a marker, and the call is refused with INVALID_ARGUMENT naming
the message type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError

__all__ = ["guarded"]


class _Undecodable:
    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _message_name(deserializer: Callable[[bytes], Any]) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request message"))


def _guard(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    decode = handler.request_deserializer
    behavior: Callable[..., Any] | None = handler.unary_unary
    if handler.request_streaming or handler.response_streaming or decode is None or not behavior:
        return handler
    name = _message_name(decode)

    def tolerant(raw: bytes) -> Any:
        try:
            return decode(raw)
        except DecodeError as error:
            return _Undecodable(str(error))

    async def refuse_undecodable(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body is not a valid {name}: {request.problem}",
            )
        result: Awaitable[Any] = behavior(request, context)
        return await result

    return grpc.unary_unary_rpc_method_handler(
        refuse_undecodable,
        request_deserializer=tolerant,
        response_serializer=handler.response_serializer,
    )


class _GuardingServer:
    """Takes a generated registration's handlers and hands guarded copies to the real server."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        # the same handlers arrive through add_registered_method_handlers, by name
        return None

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        guarded_handlers = {name: _guard(h) for name, h in method_handlers.items()}
        generic = grpc.method_handlers_generic_handler(service_name, guarded_handlers)
        self._server.add_generic_rpc_handlers((generic,))
        self._server.add_registered_method_handlers(service_name, guarded_handlers)


def guarded(
    add_to_server: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server
) -> None:
    """``add_to_server(servicer, server)`` with undecodable requests refused as INVALID_ARGUMENT."""
    add_to_server(servicer, _GuardingServer(server))
