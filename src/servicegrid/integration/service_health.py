"""Per-service health: one :class:`~servicegrid.resilience.HealthMonitor` per registered service.

A monitor probes ``GET {endpoint}{health_path}`` (``/health`` unless the service's metadata names
another ``health_path``) every ``interval`` seconds, from the first time someone asks about the
service until the integration service stops. A 2xx or 3xx answer is a success.
"""

from __future__ import annotations

from typing import Any

from servicegrid.integration.models import Service
from servicegrid.resilience.health import HealthMonitor
from servicegrid.transports.http1 import Http1Transport
from servicegrid.transports.probe import probe_health

__all__ = ["ServiceHealthBoard"]


class ServiceHealthBoard:
    """Health monitors of registered services, created on first use."""

    def __init__(self, *, interval: float = 30.0, timeout: float = 5.0) -> None:
        self.interval = interval
        self.timeout = timeout
        self._monitors: dict[tuple[str, str], HealthMonitor] = {}
        self._http = Http1Transport(service="service-health")

    def _probe_for(self, service: Service, health_path: str) -> Any:
        async def probe() -> bool:
            health = await probe_health(
                service.endpoint,
                path=health_path,
                timeout=self.timeout,
                transport=self._http,
                name=service.name,
            )
            return health.serving

        return probe

    async def status(self, service: Service) -> dict[str, Any]:
        """The monitor's view of ``service``, checking it now if it was never checked."""
        health_path = str(service.metadata.get("health_path") or "/health")
        url = service.endpoint.rstrip("/") + "/" + health_path.lstrip("/")
        key = (service.id, url)
        monitor = self._monitors.get(key)
        if monitor is None:
            monitor = HealthMonitor(
                self._probe_for(service, health_path),
                name=service.name,
                interval=self.interval,
                timeout=self.timeout,
            )
            self._monitors[key] = monitor
            monitor.start()
        if monitor.last_result is None:
            await monitor.check_now()
        return {
            "service_id": service.id,
            "service": service.name,
            "endpoint": service.endpoint,
            "health_url": url,
            "registered_status": service.status.value,
            **monitor.get_status(),
        }

    def summary(self) -> dict[str, str]:
        """The state of every monitored service, by name."""
        return {monitor.name: monitor.state.value for monitor in self._monitors.values()}

    async def aclose(self) -> None:
        monitors, self._monitors = list(self._monitors.values()), {}
        for monitor in monitors:
            await monitor.stop()
        await self._http.aclose()
