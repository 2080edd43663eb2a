"""Probing the configured services for ``servicegrid status`` and ``up``.

``check`` asks one target through :func:`servicegrid.transports.probe.probe_health`
(the one health probe) and raises a :class:`~servicegrid.errors.ServiceError`
unless the service is healthy, so a circuit breaker can count its failures.
``probe`` runs one check through a breaker and never raises: it returns a
:class:`ProbeResult`. ``probe_all`` probes every target concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from servicegrid import errors
from servicegrid.catalogue import WireProtocol
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery import discover_service_async
from servicegrid.discovery.urls import is_discovery_url, parse_discovery_url
from servicegrid.resilience import CircuitBreaker
from servicegrid.settings import Settings
from servicegrid.transports.base import AsyncTransport
from servicegrid.transports.http1 import Http1Transport
from servicegrid.transports.probe import probe_health

__all__ = [
    "ProbeResult",
    "ServiceTarget",
    "check",
    "configured_targets",
    "probe",
    "probe_all",
]


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """One configured service: its name, protocol and address."""

    service: str
    kind: WireProtocol
    url: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe.

    ``healthy`` is ``None`` when the service was not asked (circuit open);
    ``response_ms`` is how long the probe took, successful or not.
    """

    service: str
    kind: WireProtocol
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
    """The catalogue's local services (gRPC model services, integration, gateway, users,
    questions, API gateway), then the other HTTP services."""
    targets = [
        ServiceTarget(name, "grpc", target) for name, (target, _) in settings.grpc_services.items()
    ]
    targets.append(ServiceTarget("integration", "http", settings.integration_service_url))
    local_http = ("gateway", "users", "questions", "api-gateway")
    targets += [ServiceTarget(name, "http", settings.address_of(name)) for name in local_http]
    targets += [
        ServiceTarget(name, "http", url)
        for name, url in sorted(settings.http_services.items())
        if name not in local_http
    ]
    return targets


async def check(
    target: ServiceTarget, time_limit: float, *, http: AsyncTransport | None = None
) -> None:
    """Probe ``target`` once within ``time_limit`` seconds; raise unless it is healthy.

    A ``discovery:///<name>`` target is first found through discovery, and one of
    its instances is probed.
    """
    transport = http if target.kind == "http" else None
    url = target.url
    if is_discovery_url(url):
        name, path = parse_discovery_url(url)
        url = await discover_service_async(name, "grpc" if target.kind == "grpc" else "http")
        url += path
    health = await probe_health(url, timeout=time_limit, transport=transport)
    if health.serving:
        return
    if health.code >= 400:
        raise errors.error_for_http_status(health.code, f"GET /health answered {health.status}")
    raise errors.ServiceUnavailableError(f"health status is {health.status}")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def probe(
    target: ServiceTarget,
    breaker: CircuitBreaker | None,
    *,
    time_limit: float,
    http: AsyncTransport | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> ProbeResult:
    """Check ``target`` through ``breaker`` (if given); never raises.

    An open circuit gives ``healthy=None`` without contacting the service.
    """
    start = clock.now()
    try:
        if breaker is None:
            await check(target, time_limit, http=http)
        else:
            await breaker.call(check, target, time_limit, http=http)
    except errors.ServiceUnavailable as exc:
        return ProbeResult(target.service, target.kind, target.url, None, None, _describe(exc))
    except Exception as exc:  # a probe reports failures, it does not raise them
        elapsed = (clock.now() - start) * 1000.0
        return ProbeResult(target.service, target.kind, target.url, False, elapsed, _describe(exc))
    elapsed = (clock.now() - start) * 1000.0
    return ProbeResult(target.service, target.kind, target.url, True, elapsed)


def new_http_transport() -> Http1Transport:
    """The HTTP transport probes share: proxy variables ignored (services are internal)."""
    return Http1Transport(trust_env=False)


async def probe_all(
    targets: Iterable[ServiceTarget],
    breakers: Mapping[str, CircuitBreaker] | None = None,
    *,
    time_limit: float,
    clock: Clock = SYSTEM_CLOCK,
) -> list[ProbeResult]:
    """Probe every target concurrently (one shared HTTP transport); results in target order."""
    breakers = breakers or {}
    http = new_http_transport()
    try:
        return list(
            await asyncio.gather(
                *(
                    probe(
                        target,
                        breakers.get(target.service),
                        time_limit=time_limit,
                        http=http,
                        clock=clock,
                    )
                    for target in targets
                )
            )
        )
    finally:
        await http.aclose()
