"""``MockTransport(handler)``: answer calls with a plain function, so client tests open no socket.

.. code-block:: python

    def handler(call: Call) -> Reply:
        if call.url.endswith("/health"):
            return Reply(200, body=b'{"status": "ok"}')
        raise ConnectError("refused")          # a failure, as a real transport reports it

    client = EnhancedHTTPClient("svc", "http://svc", transport=MockTransport(handler))

The handler may be a plain function or an ``async def``; an async one serves
only :meth:`asend`. Every call it saw is kept in :attr:`calls`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from servicegrid.transports.base import Call, Reply

__all__ = ["Handler", "MockTransport"]

Handler = Callable[[Call], Reply | Awaitable[Reply]]


class MockTransport:
    """A :class:`~servicegrid.transports.base.Transport` and ``AsyncTransport`` over ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[Call] = []
        self.closed = False

    def send(self, call: Call) -> Reply:
        self.calls.append(call)
        reply = self.handler(call)
        if inspect.isawaitable(reply):
            close = getattr(reply, "close", None)
            if callable(close):
                close()  # never awaited: say so once, not as a "never awaited" warning later
            raise TypeError("an async handler serves only asend(); give a plain function for send")
        return reply

    async def asend(self, call: Call) -> Reply:
        self.calls.append(call)
        reply = self.handler(call)
        return await reply if inspect.isawaitable(reply) else reply

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True
