"""A monitor: the configured services, one circuit breaker each, probed on demand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servicegrid.cli.probes import ProbeResult, ServiceTarget, configured_targets, probe_all
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.resilience import CircuitBreaker
from servicegrid.settings import Settings

__all__ = ["Monitor", "ServiceReport"]


@dataclass(frozen=True, slots=True)
class ServiceReport:
    """One service after one round: the probe and its breaker's seed-001 status."""

    probe: ProbeResult
    circuit: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Seed 001's status keys plus kind, url, health, response_time_ms and error."""
        response_ms = self.probe.response_ms
        return {
            **self.circuit,
            "kind": self.probe.kind,
            "url": self.probe.url,
            "health": self.probe.health,
            "response_time_ms": None if response_ms is None else round(response_ms, 3),
            "error": self.probe.error,
        }


class Monitor:
    """Probes every configured service; keeps one breaker per service across rounds."""

    def __init__(self, settings: Settings, *, timeout: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.targets: list[ServiceTarget] = configured_targets(settings)
        self.timeout = timeout
        self._clock = clock
        self.breakers: dict[str, CircuitBreaker] = {
            target.service: CircuitBreaker(
                name=target.service,
                failure_threshold=settings.circuit_breaker_threshold,
                recovery_timeout=settings.circuit_breaker_timeout,
                clock=clock,
            )
            for target in self.targets
        }

    async def check(self) -> list[ServiceReport]:
        """Probe every service concurrently; reports in configuration order."""
        results = await probe_all(
            self.targets, self.breakers, time_limit=self.timeout, clock=self._clock
        )
        return [
            ServiceReport(result, self.breakers[result.service].get_status()) for result in results
        ]
