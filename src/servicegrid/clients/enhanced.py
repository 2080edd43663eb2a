"""``EnhancedHTTPClient`` (alias ``AsyncHTTPClient``): seed 004's async HTTP client on httpx.

.. code-block:: python

    client = EnhancedHTTPClient(
        service_name="my_service",
        base_url="https://api.example.com",
        pool_config=ConnectionPoolConfig(max_connections=100),
        retry_config=RetryConfig(max_retries=3, jitter=True),
        circuit_breaker_config=CircuitBreakerConfig(failure_threshold=5),
        rate_limit_config=RateLimitConfig(requests_per_second=10),
    )
    async with client:
        response = await client.post("/api/endpoint", json=data)
    status = client.get_status()      # status["error_rate"], status["circuit_breaker"]["state"]

Each call runs retry → circuit breaker → rate limiter → one HTTP attempt.
5xx, 408, 429, timeouts and connection errors are retried; other 4xx are not,
and are raised as typed errors (``ValidationError``, ``ResourceNotFoundError``,
...) whose ``to_dict()`` is a structured error result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import httpx

from servicegrid._validate import check_count, check_number
from servicegrid.clients.resilient import validate_base_url
from servicegrid.clients.state import ClientState
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ServiceError
from servicegrid.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    ExponentialBackoff,
    Jitter,
    Pipeline,
    Retry,
    remaining,
)
from servicegrid.resilience.events import Hook
from servicegrid.resilience.health import HealthMonitor
from servicegrid.resilience.policy import Policy
from servicegrid.resilience.ratelimit import RateLimitConfig, SlidingWindow, TokenBucket
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry
from servicegrid.transports.http import error_for_response, map_httpx_errors, should_raise

__all__ = [
    "AsyncHTTPClient",
    "ClientState",
    "ConnectionPoolConfig",
    "EnhancedHTTPClient",
    "RetryConfig",
    "TimeoutConfig",
]


def _check_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        check_number(f"{owner}.{name}", value, inclusive=False)


@dataclass(frozen=True, slots=True)
class ConnectionPoolConfig:
    """Connection pool limits; ``keepalive_expiry`` in seconds."""

    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry: float = 5.0

    def __post_init__(self) -> None:
        _check_positive(
            "ConnectionPoolConfig",
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry,
        )

    def limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry,
        )


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Retry settings; ``max_retries`` counts attempts, the first included (seed 004: "3 attempts").

    The wait before attempt n+1 is min(max_delay, base_delay * exponential_base**(n-1)),
    with full jitter when ``jitter`` is set.
    """

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    exponential_base: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        check_count("RetryConfig.max_retries", self.max_retries)
        check_number("RetryConfig.base_delay", self.base_delay)
        check_number("RetryConfig.max_delay", self.max_delay)
        check_number("RetryConfig.exponential_base", self.exponential_base, minimum=1.0)
        if self.max_delay < self.base_delay:
            raise ValueError(
                f"RetryConfig.max_delay ({self.max_delay}) must be >= "
                f"base_delay ({self.base_delay})"
            )

    def build(self, *, name: str, clock: Clock, hooks: Sequence[Hook]) -> Retry:
        backoff = ExponentialBackoff(
            initial=self.base_delay,
            max=self.max_delay,
            factor=self.exponential_base,
            jitter=Jitter.FULL if self.jitter else Jitter.NONE,
        )
        return Retry(
            attempts=self.max_retries, backoff=backoff, name=name, clock=clock, hooks=tuple(hooks)
        )


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Per-attempt timeouts in seconds, by phase."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 10.0
    pool: float = 5.0

    def __post_init__(self) -> None:
        _check_positive(
            "TimeoutConfig", connect=self.connect, read=self.read, write=self.write, pool=self.pool
        )

    def timeout(self, cap: float | None = None) -> httpx.Timeout:
        """The httpx timeout, each phase capped at ``cap`` seconds when given."""
        if cap is None:
            return httpx.Timeout(
                connect=self.connect, read=self.read, write=self.write, pool=self.pool
            )
        cap = max(cap, 0.001)
        return httpx.Timeout(
            connect=min(self.connect, cap),
            read=min(self.read, cap),
            write=min(self.write, cap),
            pool=min(self.pool, cap),
        )


class EnhancedHTTPClient:
    """Async HTTP client with pooling, timeouts, retry with jitter, breaker, rate limit and health.

    ``health_check_path`` (for example ``"/health"``) turns on a background
    health monitor every ``health_check_interval`` seconds while the client
    is open. ``transport`` replaces the network (``httpx.MockTransport`` in tests).
    ``extra_policies`` run innermost, around each attempt (fault injection for
    reliability tests, a bulkhead, ...).
    """

    def __init__(
        self,
        service_name: str,
        base_url: str,
        *,
        pool_config: ConnectionPoolConfig | None = None,
        retry_config: RetryConfig | None = None,
        timeout_config: TimeoutConfig | None = None,
        circuit_breaker_config: CircuitBreakerConfig | None = None,
        rate_limit_config: RateLimitConfig | None = None,
        health_check_path: str | None = None,
        health_check_interval: float = 30.0,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
        extra_policies: Sequence[Policy] = (),
        registry: StatusRegistry | None = DEFAULT_REGISTRY,
    ) -> None:
        if not isinstance(service_name, str) or not service_name:
            raise ValueError(f"service_name must be a non-empty string, got {service_name!r}")
        self.service_name = service_name
        self.base_url = validate_base_url(base_url)
        self.pool_config = pool_config or ConnectionPoolConfig()
        self.retry_config = retry_config or RetryConfig()
        self.timeout_config = timeout_config or TimeoutConfig()
        self.headers = dict(headers or {})
        self._transport = transport
        self._clock = clock
        self.hooks = tuple(hooks)
        self.circuit_breaker = CircuitBreaker(
            name=service_name,
            config=circuit_breaker_config or CircuitBreakerConfig(),
            clock=clock,
            hooks=self.hooks,
        )
        self.rate_limiter: TokenBucket | SlidingWindow | None = (
            rate_limit_config.build(name=service_name, clock=clock) if rate_limit_config else None
        )
        self.retry = self.retry_config.build(name=service_name, clock=clock, hooks=self.hooks)
        policies: list[Policy] = [self.retry, self.circuit_breaker]
        if self.rate_limiter is not None:
            policies.append(self.rate_limiter)
        policies.extend(extra_policies)
        self._pipeline = Pipeline(*policies, name=service_name)
        self.retry = cast(Retry, self._pipeline.policies[0])  # the copy wired to the breaker
        self.health_monitor: HealthMonitor | None = None
        if health_check_path is not None:
            self._health_path = health_check_path
            self.health_monitor = HealthMonitor(
                self._probe_health, name=service_name, interval=health_check_interval, clock=clock
            )
        self._client: httpx.AsyncClient | None = None
        self.state = ClientState.UNOPENED
        self.requests_total = 0
        self.errors_total = 0
        self.total_response_time = 0.0
        self.errors_by_type: Counter[str] = Counter()
        if registry is not None:
            registry.register(service_name, self)

    # ---- lifecycle -----------------------------------------------------------------

    def _ensure_open(self) -> httpx.AsyncClient:
        if self.state is ClientState.CLOSED:
            raise RuntimeError(f"{self.service_name}: the client is closed")
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self.headers,
                limits=self.pool_config.limits(),
                timeout=self.timeout_config.timeout(),
                transport=self._transport,
            )
            self.state = ClientState.OPENED
        return self._client

    async def start(self) -> None:
        """Open the connection pool and start the health monitor, if configured."""
        self._ensure_open()
        if self.health_monitor is not None:
            self.health_monitor.start()

    async def aclose(self) -> None:
        """Stop the health monitor and close every pooled connection; idempotent."""
        if self.health_monitor is not None:
            await self.health_monitor.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self.state = ClientState.CLOSED

    close = aclose

    async def __aenter__(self) -> EnhancedHTTPClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- requests ------------------------------------------------------------------

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request through the resilience pipeline; raises a :class:`ServiceError`."""
        client = self._ensure_open()
        started = self._clock.now()
        self.requests_total += 1
        try:
            return await self._pipeline.acall(self._attempt, client, method.upper(), path, kwargs)
        except ServiceError as error:
            self.errors_total += 1
            self.errors_by_type[type(error).__name__] += 1
            raise
        finally:
            self.total_response_time += self._clock.now() - started

    async def _attempt(
        self, client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        left = remaining(self._clock)
        if left is not None and "timeout" not in kwargs:
            kwargs = {**kwargs, "timeout": self.timeout_config.timeout(left)}
        with map_httpx_errors(self.service_name, f"{method} {path}"):
            response = await client.request(method, path, **kwargs)
        if should_raise(response.status_code, client_errors=True):
            raise error_for_response(
                response.status_code,
                response.headers,
                response.text,
                method=method,
                url=str(response.request.url),
                service=self.service_name,
            )
        return response

    # ---- health and status ---------------------------------------------------------

    async def _probe_health(self) -> bool:
        client = self._ensure_open()
        response = await client.get(self._health_path)
        return response.status_code < 400

    async def health_check(self) -> dict[str, Any]:
        """Check health now (bypassing retry and breaker) and return the monitor's status."""
        if self.health_monitor is None:
            self.health_monitor = HealthMonitor(
                self._probe_health, name=self.service_name, clock=self._clock
            )
            self._health_path = "/health"
        await self.health_monitor.check_now()
        return self.health_monitor.get_status()

    def get_status(self) -> dict[str, Any]:
        """Request and error counts, error rate, latency, and each policy's own status."""
        total = self.requests_total
        return {
            "service": self.service_name,
            "base_url": self.base_url,
            "client_state": self.state.value,
            "requests_total": total,
            "errors_total": self.errors_total,
            "error_rate": self.errors_total / total if total else 0.0,
            "average_response_time_ms": 1000 * self.total_response_time / total if total else 0.0,
            "errors_by_type": dict(self.errors_by_type),
            "circuit_breaker": self.circuit_breaker.get_status(),
            "rate_limiter": self.rate_limiter.get_status() if self.rate_limiter else None,
            "health": self.health_monitor.get_status() if self.health_monitor else None,
        }

    get_metrics = get_status

    def __repr__(self) -> str:
        return f"EnhancedHTTPClient({self.service_name!r}, {self.base_url!r})"


AsyncHTTPClient = EnhancedHTTPClient
"""The name the issue tracker uses for :class:`EnhancedHTTPClient`."""
