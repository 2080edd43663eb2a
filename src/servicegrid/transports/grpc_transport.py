"""``GrpcTransport``: unary gRPC calls to one target, one channel per event loop.

.. code-block:: python

    transport = GrpcTransport("localhost:50052")
    call = Call("/servicegrid.v1.EmbeddingService/GenerateEmbeddings", body=request,
                headers=call_metadata(), timeout=5.0)
    reply = await transport.asend(call)          # reply.body: GenerateEmbeddingsResponse

The request and response types come from the method's descriptor (any service
whose generated module was imported, ``grpc.health.v1`` included), so no
stubs are needed. A ``grpc.aio`` channel belongs to the event loop that opened
it: the transport opens one per loop on first use and closes it when that loop
shuts down or at :meth:`GrpcTransport.aclose`. A channel handed in is used as
it is, on its own loop only, and never closed here.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio
from google.protobuf import descriptor_pool, message_factory

from servicegrid.errors import ClientStateError
from servicegrid.transports.base import Call, Reply
from servicegrid.transports.grpc import ChannelOption, create_channel, map_grpc_errors
from servicegrid.transports.loop_local import LoopLocal

__all__ = ["GrpcTransport", "method_codec"]

Codec = tuple[Callable[[Any], bytes], Callable[[bytes], Any]]


@functools.cache
def method_codec(method: str) -> Codec:
    """(serialize request, parse response) for ``/package.Service/Method``.

    Raises ValueError for a method no imported proto module defines.
    """
    full_name = method.strip("/").replace("/", ".")
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(full_name)
    except KeyError:
        raise ValueError(f"unknown gRPC method {method!r}: no imported proto defines it") from None
    request = message_factory.GetMessageClass(descriptor.input_type)
    response = message_factory.GetMessageClass(descriptor.output_type)
    return request.SerializeToString, response.FromString


class _Channel:
    """A channel and the callables made on it, one per method."""

    __slots__ = ("channel", "methods")

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.methods: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}

    def method(self, name: str) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        found = self.methods.get(name)
        if found is None:
            serialize, parse = method_codec(name)
            found = self.methods[name] = self.channel.unary_unary(
                name, request_serializer=serialize, response_deserializer=parse
            )
        return found


class GrpcTransport:
    """An :class:`~servicegrid.transports.base.AsyncTransport` for unary RPCs to ``target``.

    ``credentials`` make the channels secure; ``options`` override the default
    channel options by key; ``service`` names the service in errors.
    """

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[ChannelOption] = (),
        channel: grpc.aio.Channel | None = None,
        service: str | None = None,
    ) -> None:
        self.target = target
        self.service = service
        self._credentials = credentials
        self._options = tuple(options)
        self._given = _Channel(channel) if channel is not None else None
        self._channels: LoopLocal[_Channel] = LoopLocal(
            self._open, self._close, what=service or target
        )

    def _open(self) -> _Channel:
        channel = create_channel(self.target, credentials=self._credentials, options=self._options)
        return _Channel(channel)

    @staticmethod
    async def _close(entry: _Channel) -> None:
        await entry.channel.close()

    def _current(self) -> _Channel:
        given = self._given
        if given is None:
            return self._channels.get()
        loop = getattr(given.channel, "_loop", None)
        if loop is not None and loop is not asyncio.get_running_loop():
            raise ClientStateError(
                f"{self.service or self.target}: the channel given to this client belongs to "
                "another event loop; give none and the client opens one per loop"
            )
        return given

    def channel(self) -> grpc.aio.Channel:
        """The running loop's channel, opened on first use."""
        return self._current().channel

    async def asend(self, call: Call) -> Reply:
        method = self._current().method(call.method)
        with map_grpc_errors(self.service, call.describe()):
            response = await method(
                call.body,
                timeout=call.timeout,
                metadata=call.headers,
            )
        return Reply(200, (), response)

    async def aclose(self) -> None:
        """Close the channels this transport opened; a channel handed in stays open."""
        await self._channels.aclose()

    def __repr__(self) -> str:
        return f"GrpcTransport({self.target!r}, channels={len(self._channels)})"
