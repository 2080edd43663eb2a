"""Seed 000's ``HealthChecker``: the standard grpc.health.v1 check against many services at once.

.. code-block:: python

    health_checker = HealthChecker({"embedding": "localhost:50052", "reranking": "localhost:50053"})
    health_status = await health_checker.check_all_services()
    for service_name, status in health_status.items():
        print(f"{service_name}: {status.status} ({status.response_time_ms:.2f}ms)")
    health_checker.get_unhealthy_services()      # ["reranking"]

Checks run concurrently, each bounded by ``timeout`` seconds, and a check that
fails in any way marks its own service unhealthy (with ``error`` set) without
touching the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc

from servicegrid._validate import check_number
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ServiceError
from servicegrid.transports.grpc import ChannelOption, channel_credentials
from servicegrid.transports.probe import probe_health

__all__ = ["HealthChecker", "HealthStatus"]


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """One service's health at ``timestamp`` (UTC); ``status`` is "healthy" or "unhealthy"."""

    service_name: str
    status: str
    timestamp: datetime
    response_time_ms: float
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the timestamp as ISO-8601."""
        return {
            "service_name": self.service_name,
            "status": self.status,
            "timestamp": self.timestamp.isoformat(),
            "response_time_ms": self.response_time_ms,
            "details": dict(self.details),
            "error": self.error,
        }


class HealthChecker:
    """Health checker for gRPC services (seed 000): ``services`` maps a name to a target.

    ``timeout`` (seconds, default 5) bounds each check, connecting included.
    ``use_tls`` with ``tls_ca_path`` (and ``tls_cert_path`` + ``tls_key_path``
    for mutual TLS) checks over TLS. ``health_service`` is the name asked about
    in ``HealthCheckRequest`` (``""``: the whole server).
    """

    def __init__(
        self,
        services: Mapping[str, str],
        *,
        timeout: float = 5.0,
        use_tls: bool = False,
        tls_ca_path: str | None = None,
        tls_cert_path: str | None = None,
        tls_key_path: str | None = None,
        health_service: str = "",
        channel_options: Sequence[ChannelOption] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        for name, target in services.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"service names must be non-empty strings, got {name!r}")
            if not isinstance(target, str) or not target.strip():
                raise ValueError(f"services[{name!r}] must be a gRPC target, got {target!r}")
        self.services = dict(services)
        self.timeout = check_number("timeout", timeout, inclusive=False)
        if not use_tls and (tls_ca_path or tls_cert_path or tls_key_path):
            raise ValueError("TLS paths were given but use_tls is False")
        self._credentials: grpc.ChannelCredentials | None = (
            channel_credentials(cert_path=tls_cert_path, key_path=tls_key_path, ca_path=tls_ca_path)
            if use_tls
            else None
        )
        self.health_service = health_service
        self._channel_options = tuple(channel_options)
        self._clock = clock
        self.health_status: dict[str, HealthStatus] = {}

    def _timestamp(self) -> datetime:
        return datetime.fromtimestamp(self._clock.wall(), tz=UTC)

    async def check_all_services(self) -> dict[str, HealthStatus]:
        """Check every service concurrently; returns (and keeps) the status of each by name."""
        names = list(self.services)
        results = await asyncio.gather(
            *(self._check_service_health(name, self.services[name]) for name in names),
            return_exceptions=True,
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, HealthStatus):
                self.health_status[name] = result
            elif isinstance(result, Exception):  # not expected: each check catches its own
                self.health_status[name] = self._unhealthy(name, self.services[name], 0.0, result)
            else:
                raise result
        return dict(self.health_status)

    async def check_service(self, service_name: str) -> HealthStatus:
        """Check one configured service now; KeyError for a name not in ``services``."""
        status = await self._check_service_health(service_name, self.services[service_name])
        self.health_status[service_name] = status
        return status

    async def _check_service_health(self, service_name: str, service_url: str) -> HealthStatus:
        """Check one target; never raises (but for cancellation): failures are unhealthy."""
        started = self._clock.now()
        try:
            health = await probe_health(
                service_url,
                timeout=self.timeout,
                service=self.health_service,
                credentials=self._credentials,
                channel_options=self._channel_options,
                name=service_name,
            )
        except Exception as error:
            elapsed = 1000 * (self._clock.now() - started)
            return self._unhealthy(service_name, service_url, elapsed, error)
        return HealthStatus(
            service_name=service_name,
            status="healthy" if health.serving else "unhealthy",
            timestamp=self._timestamp(),
            response_time_ms=1000 * (self._clock.now() - started),
            details={"grpc_status": health.status, "service_url": service_url},
        )

    def _unhealthy(
        self, service_name: str, service_url: str, elapsed_ms: float, error: Exception
    ) -> HealthStatus:
        details: dict[str, Any] = {"service_url": service_url, "error_type": type(error).__name__}
        if isinstance(error, ServiceError) and "grpc_code" in error.details:
            details["grpc_code"] = error.details["grpc_code"]
        return HealthStatus(
            service_name=service_name,
            status="unhealthy",
            timestamp=self._timestamp(),
            response_time_ms=elapsed_ms,
            details=details,
            error=str(error) or type(error).__name__,
        )

    def get_service_health(self, service_name: str) -> HealthStatus | None:
        """The last status seen for ``service_name``, or None before its first check."""
        return self.health_status.get(service_name)

    def is_service_healthy(self, service_name: str) -> bool:
        """Whether the last check of ``service_name`` found it healthy (False if never checked)."""
        status = self.get_service_health(service_name)
        return status is not None and status.healthy

    def get_unhealthy_services(self) -> list[str]:
        """Names of the checked services whose last check was not healthy."""
        return [name for name, status in self.health_status.items() if not status.healthy]
