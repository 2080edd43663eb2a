"""``GatewayDeps``: what both faces of the API gateway share, built from settings or given."""

from __future__ import annotations

from dataclasses import dataclass

from servicegrid.apps.api_gateway.health import service_health
from servicegrid.apps.api_gateway.keys import KeyTable
from servicegrid.apps.api_gateway.limits import ClientLimits
from servicegrid.apps.api_gateway.proxy import ProxyForwarder
from servicegrid.apps.api_gateway.schemas import ServiceHealthAnswer
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.resolver import Discovery
from servicegrid.settings import Settings

__all__ = ["GatewayDeps"]


@dataclass(slots=True)
class GatewayDeps:
    """What both faces of the gateway share: discovery, the proxy, the buckets, the keys.

    ``probe_timeout`` bounds each instance's health probe (seconds). :meth:`aclose`
    closes the proxy's transports and discovery.
    """

    discovery: Discovery
    forwarder: ProxyForwarder
    limiter: ClientLimits
    keys: KeyTable
    probe_timeout: float
    clock: Clock = SYSTEM_CLOCK

    @classmethod
    def from_settings(
        cls, settings: Settings, *, discovery: Discovery, clock: Clock = SYSTEM_CLOCK
    ) -> GatewayDeps:
        """Deps configured by ``settings`` (``API_GATEWAY_*``) over ``discovery``, which they
        then own."""
        return cls(
            discovery=discovery,
            forwarder=ProxyForwarder(
                discovery,
                timeout=settings.api_gateway_proxy_timeout,
                allowed=settings.api_gateway_proxy_services,
                clock=clock,
            ),
            limiter=ClientLimits(
                rate=settings.api_gateway_rate_limit_rps,
                burst=settings.api_gateway_rate_limit_burst,
                clock=clock,
            ),
            keys=KeyTable(settings.api_gateway_keys),
            probe_timeout=settings.status_timeout,
            clock=clock,
        )

    async def health(self, service: str) -> ServiceHealthAnswer:
        """``service``'s health; see :func:`~servicegrid.apps.api_gateway.health.service_health`."""
        return await service_health(
            self.discovery, service, timeout=self.probe_timeout, clock=self.clock
        )

    async def aclose(self) -> None:
        """Close the proxy's transports, then discovery; idempotent."""
        try:
            await self.forwarder.aclose()
        finally:
            await self.discovery.aclose()
