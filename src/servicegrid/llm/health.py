"""Health probes of LLM hosts: ``GET /health``, or ``GET /v1/models`` where that is 404."""

from __future__ import annotations

import asyncio
from typing import Any

from servicegrid.clock import Clock
from servicegrid.errors import ServiceError
from servicegrid.llm.hosts import HostState
from servicegrid.transports.base import AsyncTransport

__all__ = ["probe"]


async def probe(
    state: HostState, transport: AsyncTransport, *, within: float, clock: Clock
) -> dict[str, Any]:
    """``{"status": "healthy"|"unhealthy"|"disabled", "response_time_ms", "circuit_breaker",
    "url", "error" (when unhealthy)}`` for one host, within ``within`` seconds. A probe does
    not go through the host's breaker and does not move it."""
    about = {"circuit_breaker": state.breaker.state.value, "url": state.host.url}
    if not state.enabled:
        return {"status": "disabled", "response_time_ms": None, **about}
    started = clock.now()
    error: str | None = None
    try:
        async with asyncio.timeout(within):
            status = await _status(state, transport, "/health", within)
            if status == 404:
                status = await _status(state, transport, "/v1/models", within)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except TimeoutError:
        error = f"no answer within {within:g}s"
    except ServiceError as exc:
        error = f"{type(exc).__name__}: {exc}"
    elapsed_ms = round((clock.now() - started) * 1000, 3)
    if error is None:
        return {"status": "healthy", "response_time_ms": elapsed_ms, **about}
    return {"status": "unhealthy", "response_time_ms": elapsed_ms, **about, "error": error}


async def _status(state: HostState, transport: AsyncTransport, path: str, within: float) -> int:
    call = state.encoder.encode("GET", path, {}).with_timeout(within)
    return (await transport.asend(call)).status
