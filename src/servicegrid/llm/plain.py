"""One plain (not streamed) attempt on one host, through the transport seam."""

from __future__ import annotations

import asyncio

import httpx

from servicegrid.clock import Clock
from servicegrid.errors import DeadlineExceeded, ServiceError
from servicegrid.llm.hosts import Attempt
from servicegrid.transports.base import AsyncTransport, Call
from servicegrid.transports.http import error_for_reply, should_raise
from servicegrid.transports.httpx_compat import as_httpx_response

__all__ = ["send"]


async def send(
    transport: AsyncTransport, lease: Attempt, call: Call, left: float, clock: Clock
) -> httpx.Response:
    """Send ``call`` with ``left`` seconds to answer and settle ``lease``.

    A retryable status (5xx, 408, 429) is raised as its typed error, so the
    caller fails over; any other answer, a 4xx included, is returned.
    """
    call = call.with_timeout(left)
    try:
        async with asyncio.timeout(left):
            reply = await transport.asend(call)
    except TimeoutError:
        late = DeadlineExceeded(
            f"{call.describe()}: no answer within {left:.3g}s", service=lease.host.name
        )
        lease.failed(late)
        raise late from None
    except ServiceError as error:
        error.service = lease.host.name  # the shared transport names no host
        lease.failed(error)
        raise
    except BaseException:
        lease.abandoned()
        raise
    status = reply.status
    if status >= 400 and should_raise(status, client_errors=False):
        refused = error_for_reply(call, reply, service=lease.host.name)
        lease.failed(refused)
        raise refused
    lease.succeeded(client_error=status >= 400)
    return as_httpx_response(call, reply, clock.now() - lease.started)
