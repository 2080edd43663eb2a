"""Streamed answers over httpx (the transport seam has no streaming call).

:meth:`StreamOpener.open` sends one attempt and waits for the first body
byte: until then any failure (no connection, a retryable status, the
connection dropped) is an ordinary failed attempt, so the caller fails over.
After it, the body is relayed chunk by chunk as it arrives, and a failure is
raised to the reader as a typed error (:class:`~servicegrid.errors.ConnectionLost`,
:class:`~servicegrid.errors.ReadTimeout`) and never retried: part of the
answer has already been read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from servicegrid.errors import DeadlineExceeded, ServiceError
from servicegrid.llm.hosts import Attempt
from servicegrid.transports.base import Call
from servicegrid.transports.http import error_for_response, map_httpx_errors, should_raise
from servicegrid.transports.loop_local import LoopLocal

__all__ = ["StreamOpener", "iter_sse_data"]

_DONE = "[DONE]"


class _Relay(httpx.AsyncByteStream):
    """The body of an opened stream: the chunk read ahead, then the rest as it comes."""

    def __init__(
        self,
        first: bytes,
        rest: AsyncIterator[bytes],
        source: httpx.Response,
        lease: Attempt,
        what: str,
    ) -> None:
        self._what = what
        self._first = first
        self._rest = rest
        self._source = source
        self._lease = lease

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first:
            first, self._first = self._first, b""
            yield first
        while True:
            try:
                with map_httpx_errors(self._lease.host.name, self._what):
                    chunk = await anext(self._rest)
            except StopAsyncIteration:
                self._lease.succeeded(client_error=self._source.status_code >= 400)
                return
            except ServiceError as error:
                self._lease.failed(error)
                raise
            yield chunk

    async def aclose(self) -> None:
        # A reader that stops early leaves a host that answered well.
        self._lease.succeeded(client_error=self._source.status_code >= 400)
        close = getattr(self._rest, "aclose", None)  # httpx's raw iterator is a generator
        if close is not None:
            await close()
        await self._source.aclose()


class StreamOpener:
    """Opens streamed requests on an ``httpx.AsyncClient`` per event loop.

    ``timeout`` bounds each phase of the exchange (connect at most
    ``connect_timeout``), so once a stream flows, ``timeout`` is the longest
    wait for its next chunk.
    """

    def __init__(
        self,
        *,
        timeout: float,
        connect_timeout: float,
        limits: httpx.Limits,
        verify: bool | str,
        trust_env: bool,
    ) -> None:
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._clients: LoopLocal[httpx.AsyncClient] = LoopLocal(
            lambda: httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=connect_timeout),
                limits=limits,
                verify=verify,
                trust_env=trust_env,
            ),
            lambda client: client.aclose(),
            what="llm streams",
        )

    async def open(self, lease: Attempt, call: Call, left: float) -> httpx.Response:
        """Send ``call`` with ``left`` seconds to reach the first body byte; settle ``lease``
        now if the attempt fails, or when the returned response is read to its end or closed."""
        host = lease.host.name
        client = self._clients.get()
        request = client.build_request(
            call.method,
            call.url,
            headers=list(call.headers),
            content=call.body,
            timeout=httpx.Timeout(self._timeout, connect=min(self._connect_timeout, left)),
        )
        try:
            async with asyncio.timeout(left):
                with map_httpx_errors(host, call.describe()):
                    source = await client.send(request, stream=True)
                    try:
                        return await _first_byte(source, lease, call)
                    except BaseException:
                        await source.aclose()
                        raise
        except TimeoutError:
            error = DeadlineExceeded(
                f"{call.describe()}: no first byte within {left:.3g}s", service=host
            )
            lease.failed(error)
            raise error from None
        except ServiceError as error:
            lease.failed(error)
            raise
        except BaseException:
            lease.abandoned()
            raise

    async def aclose(self) -> None:
        await self._clients.aclose()


async def _first_byte(source: httpx.Response, lease: Attempt, call: Call) -> httpx.Response:
    status = source.status_code
    if should_raise(status, client_errors=False):  # retryable: 5xx, 408, 429
        await source.aread()
        raise error_for_response(
            status,
            {"retry-after": source.headers.get("retry-after", "")},
            source.text,
            method=call.method,
            url=call.url,
            service=lease.host.name,
        )
    rest = source.aiter_raw()
    first = await anext(rest, b"")
    lease.first_byte()
    return httpx.Response(
        status,
        headers=source.headers,
        stream=_Relay(first, rest, source, lease, call.describe()),
        request=source.request,
        extensions=source.extensions,
    )


async def iter_sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event of ``response`` as it arrives, until OpenAI's
    ``[DONE]`` (not yielded) or the end of the stream."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                event, data = "\n".join(data), []
                if event == _DONE:
                    return
                yield event
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        # other fields (event:, id:, retry:) and ":" comments carry nothing we relay
    if data and (event := "\n".join(data)) != _DONE:
        yield event
