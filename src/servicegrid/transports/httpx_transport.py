"""``HttpxTransport``: HTTP through httpx, from threads and event loops alike.

The async HTTP client uses it for HTTP/2 (``http2=True``, with the ``h2``
package) and to run over a given httpx transport (``httpx.MockTransport``, a
recording transport in tests); the integration client uses it for both of its
halves. One ``httpx.AsyncClient`` per event loop, one ``httpx.Client`` for all
threads.
"""

from __future__ import annotations

import threading

import httpx

from servicegrid.errors import ClientStateError
from servicegrid.transports.base import Call, Reply
from servicegrid.transports.http import PhaseTimeouts, PoolLimits, map_httpx_errors
from servicegrid.transports.loop_local import LoopLocal

__all__ = ["HttpxTransport"]


class HttpxTransport:
    """A ``Transport`` and ``AsyncTransport`` on httpx clients it opens on first use.

    ``transport`` / ``async_transport`` replace httpx's network layer for the sync
    and the async side (the transports are then closed with this one); ``client``
    hands in a ready ``httpx.Client`` for the sync side, which is not closed here.
    ``trust_env`` honours proxy variables; ``service`` names the service in errors.
    """

    def __init__(
        self,
        *,
        limits: PoolLimits | None = None,
        timeouts: PhaseTimeouts | None = None,
        http2: bool = False,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.Client | None = None,
        trust_env: bool = True,
        service: str | None = None,
    ) -> None:
        self.limits = limits or PoolLimits()
        self.timeouts = timeouts or PhaseTimeouts()
        self.http2 = http2
        self.service = service
        self._transport = transport
        self._async_transport = async_transport
        self._trust_env = trust_env
        self._lock = threading.Lock()
        self._client: httpx.Client | None = client
        self._owns_client = client is None
        self._closed = False
        self._async_clients: LoopLocal[httpx.AsyncClient] = LoopLocal(
            self._open_async, self._close_async, what=service or "http"
        )

    def _timeout(self, cap: float | None) -> httpx.Timeout:
        return self.timeouts.capped(cap).as_httpx()

    def _open_async(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            limits=self.limits.as_httpx(),
            timeout=self._timeout(None),
            http2=self.http2,
            transport=self._async_transport,
            trust_env=self._trust_env,
        )

    @staticmethod
    async def _close_async(client: httpx.AsyncClient) -> None:
        await client.aclose()

    def _sync_client(self) -> httpx.Client:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._closed:
                raise ClientStateError(f"{self.service or 'http'}: the client is closed")
            if self._client is None:
                self._client = httpx.Client(
                    limits=self.limits.as_httpx(),
                    timeout=self._timeout(None),
                    http2=self.http2,
                    transport=self._transport,
                    trust_env=self._trust_env,
                )
            return self._client

    def _request(self, client: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        return client.build_request(
            call.method,
            call.url,
            headers=list(call.headers),
            content=call.body,
            timeout=self._timeout(call.timeout),
        )

    @staticmethod
    def _reply(response: httpx.Response) -> Reply:
        return Reply(
            response.status_code,
            response.headers.raw,
            response.content,
            response,
            response.http_version,
        )

    def send(self, call: Call) -> Reply:
        client = self._sync_client()
        follow = bool(call.options.get("follow_redirects", False))
        with map_httpx_errors(self.service, call.describe()):
            response = client.send(self._request(client, call), follow_redirects=follow)
        return self._reply(response)

    async def asend(self, call: Call) -> Reply:
        client = self._async_clients.get()
        follow = bool(call.options.get("follow_redirects", False))
        with map_httpx_errors(self.service, call.describe()):
            response = await client.send(self._request(client, call), follow_redirects=follow)
        return self._reply(response)

    def close(self) -> None:
        """Close the sync client; idempotent."""
        with self._lock:
            client, self._client, self._closed = self._client, None, True
        if client is not None and self._owns_client:
            client.close()

    async def aclose(self) -> None:
        """Close the async clients and the sync one; idempotent."""
        await self._async_clients.aclose()
        self.close()

    def __repr__(self) -> str:
        return f"HttpxTransport(http2={self.http2})"
