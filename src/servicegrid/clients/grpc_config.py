"""Seed 000's ``ServiceClientConfig``: one gRPC client's address, timeouts, retry, breaker, TLS.

.. code-block:: python

    config = ServiceClientConfig("embedding:50052", timeout=60.0, tenant_id="acme")
    config = ServiceClientConfig.from_settings(load_settings(), "embedding")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from servicegrid import catalogue
from servicegrid._validate import check_count, check_number
from servicegrid.resilience.breaker import CircuitBreakerConfig
from servicegrid.resilience.retry_spec import RetrySpec
from servicegrid.transports.grpc import check_metadata_value

if TYPE_CHECKING:
    from servicegrid.settings import Settings

__all__ = ["ServiceClientConfig"]


def _optional_path(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"ServiceClientConfig.{name} must be a file path or None, got {value!r}")


@dataclass(frozen=True, slots=True)
class ServiceClientConfig:
    """Configuration for one service client (seed 000); durations in seconds.

    ``retry_attempts`` counts every attempt, the first included; the wait before
    attempt n+1 is up to min(max_retry_delay, retry_delay * exponential_base**(n-1)).
    ``circuit_breaker_threshold`` failed attempts in a row open the breaker for
    ``circuit_breaker_timeout`` seconds. ``tls_cert_path`` and ``tls_key_path``
    (mutual TLS) and ``tls_ca_path`` need ``use_tls``. ``tenant_id`` and
    ``correlation_id`` travel as ``x-tenant-id`` and ``x-request-id`` on every call.
    Raises ValueError naming the field for any bad value.
    """

    service_url: str
    timeout: float = 30.0
    retry_attempts: int = 3
    retry_delay: float = 1.0
    circuit_breaker_threshold: int = 5
    circuit_breaker_timeout: float = 60.0
    max_retry_delay: float = 60.0
    exponential_base: float = 2.0

    # Authentication
    use_tls: bool = False
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    tls_ca_path: str | None = None

    # Headers
    tenant_id: str | None = None
    correlation_id: str | None = None

    def __post_init__(self) -> None:
        url = self.service_url
        if isinstance(url, str) and url.lower().startswith("grpc://"):
            url = url[len("grpc://") :].rstrip("/")  # as settings accept it: grpc://host:port
            object.__setattr__(self, "service_url", url)
        if not isinstance(url, str) or not url.strip() or any(c.isspace() for c in url):
            raise ValueError(
                f"ServiceClientConfig.service_url must be a gRPC target such as "
                f"'localhost:50052', got {self.service_url!r}"
            )
        if url.lower().startswith("discovery:"):
            from servicegrid.discovery.balancer import parse_discovery_url

            parse_discovery_url(url)  # raises for discovery:// without a service name
        elif url.lower().startswith(("http://", "https://")):
            raise ValueError(
                f"ServiceClientConfig.service_url must be a gRPC target (host:port), "
                f"not an HTTP URL: {url!r}"
            )
        check_number("ServiceClientConfig.timeout", self.timeout, inclusive=False)
        check_count("ServiceClientConfig.retry_attempts", self.retry_attempts)
        check_number("ServiceClientConfig.retry_delay", self.retry_delay)
        check_count("ServiceClientConfig.circuit_breaker_threshold", self.circuit_breaker_threshold)
        check_number("ServiceClientConfig.circuit_breaker_timeout", self.circuit_breaker_timeout)
        check_number("ServiceClientConfig.max_retry_delay", self.max_retry_delay)
        check_number("ServiceClientConfig.exponential_base", self.exponential_base, minimum=1.0)
        if self.max_retry_delay < self.retry_delay:
            raise ValueError(
                f"ServiceClientConfig.max_retry_delay ({self.max_retry_delay}) must be >= "
                f"retry_delay ({self.retry_delay})"
            )
        if not isinstance(self.use_tls, bool):
            raise ValueError(f"ServiceClientConfig.use_tls must be a bool, got {self.use_tls!r}")
        for name in ("tls_cert_path", "tls_key_path", "tls_ca_path"):
            _optional_path(name, getattr(self, name))
            if getattr(self, name) is not None and not self.use_tls:
                raise ValueError(f"ServiceClientConfig.{name} is set but use_tls is False")
        if (self.tls_cert_path is None) != (self.tls_key_path is None):
            raise ValueError(
                "ServiceClientConfig.tls_cert_path and tls_key_path go together (mutual TLS): "
                "set both or neither"
            )
        for name in ("tenant_id", "correlation_id"):
            value = getattr(self, name)
            if value is not None:
                check_metadata_value(f"ServiceClientConfig.{name}", value)

    @classmethod
    def from_settings(cls, settings: Settings, service: str, **overrides: Any) -> Self:
        """The config for ``service`` (a catalogue name or alias: ``"embedding"``,
        ``"documents"``, ...) from loaded settings: its URL and timeout plus the shared
        retry and breaker values; ``overrides`` win."""
        targets = settings.grpc_services
        try:
            name = catalogue.lookup(service).name
        except KeyError:
            name = service
        if name not in targets:
            raise ValueError(f"unknown service {service!r}; known: {', '.join(targets)}")
        url, timeout = targets[name]
        values: dict[str, Any] = {
            "service_url": url,
            "timeout": timeout,
            "retry_attempts": settings.max_retry_attempts,
            "retry_delay": settings.retry_base_delay,
            "max_retry_delay": settings.retry_max_delay,
            "circuit_breaker_threshold": settings.circuit_breaker_threshold,
            "circuit_breaker_timeout": settings.circuit_breaker_timeout,
        }
        return cls(**{**values, **overrides})

    def retry_spec(self) -> RetrySpec:
        """Seed 000's retry fields as a RetrySpec: ``retry_attempts`` counts every attempt."""
        return RetrySpec.exponential(
            self.retry_attempts,
            base_delay=self.retry_delay,
            max_delay=self.max_retry_delay,
            factor=self.exponential_base,
        )

    def breaker_config(self) -> CircuitBreakerConfig:
        """Seed 000's breaker fields: ``circuit_breaker_threshold`` failed attempts in a row open
        it for ``circuit_breaker_timeout`` seconds."""
        return CircuitBreakerConfig(
            failure_threshold=self.circuit_breaker_threshold,
            recovery_timeout=self.circuit_breaker_timeout,
        )
