"""Health probes: the standard gRPC health check and ``GET {url}/health``.

``check_grpc`` and ``check_http`` raise a :class:`~servicegrid.errors.ServiceError`
unless the service is healthy, so a circuit breaker can count their failures.
``probe`` runs one check through a breaker and never raises: it returns a
:class:`ProbeResult`. ``probe_all`` probes every target concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import grpc
import httpx

from servicegrid import errors
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.resilience import CircuitBreaker
from servicegrid.settings import Settings
from servicegrid.transports.grpc import health_status
from servicegrid.transports.http import map_httpx_errors

__all__ = [
    "Kind",
    "ProbeResult",
    "ServiceTarget",
    "check_grpc",
    "check_http",
    "configured_targets",
    "new_http_client",
    "probe",
    "probe_all",
]

Kind = Literal["grpc", "http"]


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """One configured service: its name, protocol and address."""

    service: str
    kind: Kind
    url: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe.

    ``healthy`` is ``None`` when the service was not asked (circuit open);
    ``response_ms`` is how long the probe took, successful or not.
    """

    service: str
    kind: Kind
    url: str
    healthy: bool | None
    response_ms: float | None
    error: str | None = None

    @property
    def health(self) -> Literal["healthy", "unhealthy", "unknown"]:
        if self.healthy is None:
            return "unknown"
        return "healthy" if self.healthy else "unhealthy"


def configured_targets(settings: Settings) -> list[ServiceTarget]:
    """The four gRPC model services, the integration service, then every HTTP service."""
    targets = [
        ServiceTarget(name, "grpc", target) for name, (target, _) in settings.grpc_services.items()
    ]
    targets.append(ServiceTarget("integration", "http", settings.integration_service_url))
    targets += [
        ServiceTarget(name, "http", url) for name, url in sorted(settings.http_services.items())
    ]
    return targets


async def check_grpc(target: str, time_limit: float) -> None:
    """Ask ``grpc.health.v1.Health/Check`` (service ``""``) at ``target``; raise unless SERVING.

    ``time_limit`` (seconds) goes out as the call's gRPC deadline.
    """
    async with grpc.aio.insecure_channel(target) as channel:
        status = await health_status(channel, time_limit=time_limit)
    if status != "SERVING":
        raise errors.ServiceUnavailableError(f"health status is {status}")


async def check_http(client: httpx.AsyncClient, url: str, time_limit: float) -> None:
    """``GET {url}/health``; raise unless the answer is 2xx.

    ``time_limit`` (seconds) is the HTTP timeout.
    """
    health_url = f"{url.rstrip('/')}/health"
    with map_httpx_errors(None, f"GET {health_url}"):
        response = await client.get(health_url, timeout=time_limit)
    if response.is_success:
        return
    if response.status_code >= 400:
        raise errors.error_for_http_status(response.status_code)
    raise errors.RemoteError(f"unexpected HTTP {response.status_code}")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def probe(
    target: ServiceTarget,
    breaker: CircuitBreaker | None,
    *,
    time_limit: float,
    http_client: httpx.AsyncClient | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> ProbeResult:
    """Check ``target`` through ``breaker`` (if given); never raises.

    An open circuit gives ``healthy=None`` without contacting the service.
    """
    start = clock.now()
    try:
        if target.kind == "grpc":
            if breaker is None:
                await check_grpc(target.url, time_limit)
            else:
                await breaker.call(check_grpc, target.url, time_limit)
        else:
            async with _http_client(http_client) as client:
                if breaker is None:
                    await check_http(client, target.url, time_limit)
                else:
                    await breaker.call(check_http, client, target.url, time_limit)
    except errors.ServiceUnavailable as exc:
        return ProbeResult(target.service, target.kind, target.url, None, None, _describe(exc))
    except Exception as exc:  # a probe reports failures, it does not raise them
        elapsed = (clock.now() - start) * 1000.0
        return ProbeResult(target.service, target.kind, target.url, False, elapsed, _describe(exc))
    elapsed = (clock.now() - start) * 1000.0
    return ProbeResult(target.service, target.kind, target.url, True, elapsed)


@asynccontextmanager
async def _http_client(given: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """Use the given client as is, or own a fresh one for the duration."""
    if given is not None:
        yield given
        return
    async with new_http_client() as owned:
        yield owned


def new_http_client() -> httpx.AsyncClient:
    """The client probes use: follows redirects, ignores proxy variables (services are internal)."""
    return httpx.AsyncClient(follow_redirects=True, trust_env=False)


async def probe_all(
    targets: Iterable[ServiceTarget],
    breakers: Mapping[str, CircuitBreaker] | None = None,
    *,
    time_limit: float,
    clock: Clock = SYSTEM_CLOCK,
) -> list[ProbeResult]:
    """Probe every target concurrently (one shared HTTP client); results in target order."""
    breakers = breakers or {}
    async with new_http_client() as client:
        return list(
            await asyncio.gather(
                *(
                    probe(
                        target,
                        breakers.get(target.service),
                        time_limit=time_limit,
                        http_client=client,
                        clock=clock,
                    )
                    for target in targets
                )
            )
        )
