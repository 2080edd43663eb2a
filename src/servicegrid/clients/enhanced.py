"""``EnhancedHTTPClient`` (alias ``AsyncHTTPClient``): seed 004's async HTTP client.

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
        response = await client.post("/api/endpoint", json=data)    # an httpx.Response
    status = client.get_status()      # status["error_rate"], status["circuit_breaker"]["state"]

It speaks httpx (its arguments, ``httpx.Response``) and sends through the
transport seam: retry → circuit breaker → rate limiter (built by
:func:`~servicegrid.resilience.build_pipeline`) in a
:class:`~servicegrid.transports.resilient.ResilientTransport`, over
servicegrid's own HTTP/1.1 transport
(:class:`~servicegrid.transports.http1.Http1Transport`, the fastest client
measured) or, with ``http2=True``, httpx with HTTP/2.
5xx, 408, 429, timeouts and connection errors are retried; other 4xx are not,
and are raised as typed errors (``ValidationError``, ``ResourceNotFoundError``,
...) whose ``to_dict()`` is a structured error result.

One client may be used from any event loop and thread: its breaker, limiter
and counters are shared, and a connection pool is opened per event loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from servicegrid._validate import check_count, check_number
from servicegrid.clients.resilient import validate_base_url
from servicegrid.clients.state import ClientState
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.balancer import balanced_http
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import ClientStateError, ServiceError
from servicegrid.resilience import (
    CircuitBreakerConfig,
    Jitter,
    RetrySpec,
    build_pipeline,
)
from servicegrid.resilience.breaker import CircuitBreaker
from servicegrid.resilience.events import Hook
from servicegrid.resilience.health import HealthMonitor
from servicegrid.resilience.policy import Policy
from servicegrid.resilience.ratelimit import RateLimitConfig, SlidingWindow, TokenBucket
from servicegrid.resilience.retry import Retry
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry
from servicegrid.transports.base import AsyncTransport
from servicegrid.transports.http import PhaseTimeouts, PoolLimits, StatusCheck
from servicegrid.transports.http1 import Http1Transport
from servicegrid.transports.httpx_compat import RequestEncoder, as_httpx_response
from servicegrid.transports.httpx_transport import HttpxTransport
from servicegrid.transports.probe import probe_health
from servicegrid.transports.resilient import ResilientTransport

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
class ConnectionPoolConfig(PoolLimits):
    """Connection pool limits; ``keepalive_expiry`` in seconds, every limit above zero."""

    def __post_init__(self) -> None:
        _check_positive(
            "ConnectionPoolConfig",
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry,
        )

    def limits(self) -> httpx.Limits:
        """These limits as httpx's."""
        return self.as_httpx()

    def pool_limits(self) -> PoolLimits:
        """These limits as the HTTP transports take them."""
        return PoolLimits(
            self.max_connections, self.max_keepalive_connections, self.keepalive_expiry
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

    def retry_spec(self) -> RetrySpec:
        """Seed 004's fields as a RetrySpec: ``max_retries`` counts every attempt."""
        return RetrySpec.exponential(
            self.max_retries,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            factor=self.exponential_base,
            jitter=Jitter.FULL if self.jitter else Jitter.NONE,
        )

    def build(self, *, name: str, clock: Clock, hooks: Sequence[Hook]) -> Retry:
        """The :class:`Retry` policy this describes."""
        return self.retry_spec().build(name=name, clock=clock, hooks=hooks)


@dataclass(frozen=True, slots=True)
class TimeoutConfig(PhaseTimeouts):
    """Per-attempt timeouts in seconds, by phase."""

    def phases(self) -> PhaseTimeouts:
        """These timeouts as the HTTP transports take them."""
        return PhaseTimeouts(self.connect, self.read, self.write, self.pool)

    def timeout(self, cap: float | None = None) -> httpx.Timeout:
        """The httpx timeout, each phase capped at ``cap`` seconds when given."""
        return self.capped(cap).as_httpx()


class EnhancedHTTPClient:
    """Async HTTP client with pooling, timeouts, retry with jitter, breaker, rate limit and health.

    ``health_check_path`` (for example ``"/health"``) turns on a background
    health monitor every ``health_check_interval`` seconds while the client
    is open. ``transport`` replaces the network: a servicegrid
    :class:`~servicegrid.transports.base.AsyncTransport` (``MockTransport`` in
    tests) or an ``httpx.AsyncBaseTransport``. ``http2=True`` sends through
    httpx with HTTP/2 (needs the ``h2`` package). ``extra_policies`` run
    innermost, around each attempt (fault injection for reliability tests, a bulkhead, ...).
    A ``base_url`` of ``discovery:///<service>`` spreads calls over the instances that
    ``discovery`` (default: the process's) finds, a circuit breaker each.
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
        transport: AsyncTransport | httpx.AsyncBaseTransport | None = None,
        http2: bool = False,
        discovery: Discovery | None = None,
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
        self._clock = clock
        self.hooks = tuple(hooks)
        pipeline = build_pipeline(
            name=service_name,
            retry=self.retry_config.retry_spec(),
            breaker=circuit_breaker_config or CircuitBreakerConfig(),
            limiter=rate_limit_config,
            extra=extra_policies,
            clock=clock,
            hooks=self.hooks,
        )
        self.retry = pipeline.require(Retry)
        self.circuit_breaker = pipeline.require(CircuitBreaker)
        self.rate_limiter: TokenBucket | SlidingWindow | None = pipeline.limiter
        self._encoder = RequestEncoder(self.base_url, self.headers)
        self.http: AsyncTransport = balanced_http(
            self.base_url,
            self._network(transport, http2),
            service=service_name,
            discovery=discovery,
            clock=clock,
            hooks=self.hooks,
        )
        self.transport = ResilientTransport(
            self.http,
            pipeline,
            check=StatusCheck(client_errors=True, service=service_name),
            name=service_name,
            clock=clock,
        )
        self._health_path = health_check_path or "/health"
        self.health_monitor: HealthMonitor | None = None
        if health_check_path is not None:
            self.health_monitor = self._new_monitor(health_check_interval)
        self.state = ClientState.UNOPENED
        self.requests_total = 0
        self.errors_total = 0
        self.total_response_time = 0.0
        self.errors_by_type: Counter[str] = Counter()
        if registry is not None:
            registry.register(service_name, self)

    def _network(
        self, transport: AsyncTransport | httpx.AsyncBaseTransport | None, http2: bool
    ) -> AsyncTransport:
        """The transport under the pipeline: the one given, httpx for HTTP/2, else our HTTP/1.1."""
        limits, timeouts = self.pool_config.pool_limits(), self.timeout_config.phases()
        if isinstance(transport, httpx.AsyncBaseTransport) or (transport is None and http2):
            return HttpxTransport(
                limits=limits,
                timeouts=timeouts,
                http2=http2,
                async_transport=transport,
                service=self.service_name,
            )
        if transport is not None:
            return transport
        return Http1Transport(
            limits=limits,
            timeouts=timeouts,
            default_headers=self._encoder.default_headers,
            service=self.service_name,
        )

    # ---- lifecycle -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self.state is ClientState.CLOSED:
            raise ClientStateError(f"{self.service_name}: the client is closed")

    async def start(self) -> None:
        """Open the connection pool and start the health monitor, if configured."""
        self._check_open()
        self.state = ClientState.OPENED
        if self.health_monitor is not None:
            self.health_monitor.start()

    async def aclose(self) -> None:
        """Stop the health monitor and close every pooled connection; idempotent."""
        self.state = ClientState.CLOSED
        if self.health_monitor is not None:
            await self.health_monitor.stop()
        await self.transport.aclose()

    close = aclose

    async def __aenter__(self) -> EnhancedHTTPClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- requests ------------------------------------------------------------------

    # The verbs hand back request()'s coroutine rather than awaiting it in one of their own:
    # ``await client.get(path)`` reads the same, and every call is one coroutine cheaper.

    def get(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, httpx.Response]:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, httpx.Response]:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, httpx.Response]:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, httpx.Response]:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Coroutine[Any, Any, httpx.Response]:
        return self.request("DELETE", path, **kwargs)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request with httpx's arguments (``json=``, ``params=``, ``headers=``, ...)
        through the resilience pipeline; raises a :class:`ServiceError`."""
        if self.state is not ClientState.OPENED:
            self._check_open()
            self.state = ClientState.OPENED
        call = self._encoder.encode(method.upper(), path, kwargs)
        clock = self._clock
        started = clock.now()
        self.requests_total += 1
        try:
            reply = await self.transport.asend(call)
        except ServiceError as error:
            self.errors_total += 1
            self.errors_by_type[type(error).__name__] += 1
            self.total_response_time += clock.now() - started
            raise
        elapsed = clock.now() - started
        self.total_response_time += elapsed
        return as_httpx_response(call, reply, elapsed)

    # ---- health and status ---------------------------------------------------------

    def _new_monitor(self, interval: float = 30.0) -> HealthMonitor:
        return HealthMonitor(
            self._probe_health, name=self.service_name, interval=interval, clock=self._clock
        )

    async def _probe_health(self) -> bool:
        """``GET {base_url}{health_check_path}`` with the client's headers; below 400 is healthy."""
        health = await probe_health(
            self.base_url,
            path=self._health_path,
            timeout=self.timeout_config.read,
            transport=self.http,
            headers=tuple(self.headers.items()),
            name=self.service_name,
        )
        return health.serving

    async def health_check(self) -> dict[str, Any]:
        """Probe ``health_check_path`` now (bypassing retry and breaker); seed 004's shape.

        ``{"status": "healthy"|"degraded"|"unhealthy", "metrics": {...}, "circuit_breaker":
        {...}, "rate_limiter": {...} or None, "health": {...}}``: ``status`` is the health
        monitor's verdict, ``health`` its whole snapshot, ``metrics`` the request counts.
        """
        if self.health_monitor is None:
            self.health_monitor = self._new_monitor()
        await self.health_monitor.check_now()
        health = self.health_monitor.get_status()
        return {
            "status": health["status"],
            "metrics": self._request_metrics(),
            "circuit_breaker": self.circuit_breaker.get_status(),
            "rate_limiter": self.rate_limiter.get_status() if self.rate_limiter else None,
            "health": health,
        }

    def _request_metrics(self) -> dict[str, Any]:
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
        }

    def get_status(self) -> dict[str, Any]:
        """Request and error counts, error rate, latency, and each policy's own status."""
        return {
            **self._request_metrics(),
            "circuit_breaker": self.circuit_breaker.get_status(),
            "rate_limiter": self.rate_limiter.get_status() if self.rate_limiter else None,
            "health": self.health_monitor.get_status() if self.health_monitor else None,
        }

    get_metrics = get_status

    def __repr__(self) -> str:
        return f"EnhancedHTTPClient({self.service_name!r}, {self.base_url!r})"


AsyncHTTPClient = EnhancedHTTPClient
"""The name the issue tracker uses for :class:`EnhancedHTTPClient`."""
