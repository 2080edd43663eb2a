"""``ProductionLLMService``: seed 004's LLM service over the distributed LLM client.

.. code-block:: python

    service = ProductionLLMService()        # hosts from SERVICEGRID_LLM_URLS, or discovery
    await service.start()
    response = await service.generate(LLMRequest(prompt="Hello, how are you?"))
    metrics = service.get_metrics()         # generation_count, total_tokens_used, ...
    await service.stop()

Chat completions go through a rate limiter and a retry with jitter, then to the
:class:`~servicegrid.llm.client.DistributedLLMClient`, which balances them over the
hosts with a circuit breaker each; embeddings go through a
:class:`~servicegrid.embeddings.ProductionEmbeddingService`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from servicegrid.client_state import ClientState
from servicegrid.clients.enhanced import ConnectionPoolConfig, RetryConfig
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ClientStateError, ValidationError
from servicegrid.llm.chat import ChatCompletion
from servicegrid.llm.client import DistributedLLMClient
from servicegrid.llm.configured import configured_llm
from servicegrid.llm.generation import LLMRequest, LLMResponse, total_tokens
from servicegrid.llm.hosts import LLMHost
from servicegrid.llm.strategies import LoadBalancingStrategy
from servicegrid.resilience.breaker import CircuitBreakerConfig
from servicegrid.resilience.events import Hook
from servicegrid.resilience.health import HealthMonitor
from servicegrid.resilience.pipeline import build_pipeline
from servicegrid.resilience.ratelimit import RateLimitConfig
from servicegrid.settings import ConfigurationError, Settings, load_settings

if TYPE_CHECKING:
    from servicegrid.embeddings import EmbeddingResult, ProductionEmbeddingService

__all__ = ["LLMRequest", "LLMResponse", "ProductionLLMService"]

_NAME = "llm-service"


_SEVERITY = ("healthy", "degraded", "unhealthy")


def _client_for(
    settings: Settings | None,
    hosts: Sequence[LLMHost] | None,
    *,
    strategy: LoadBalancingStrategy | str,
    timeout: float,
    pool: ConnectionPoolConfig,
    breaker: CircuitBreakerConfig | None,
    clock: Clock,
    hooks: Sequence[Hook],
) -> DistributedLLMClient:
    """A client over ``hosts``, else over the hosts ``settings`` name; ConfigurationError
    when there are none."""
    options: dict[str, Any] = {
        "strategy": strategy,
        "timeout": timeout,
        "limits": pool.pool_limits(),
        "clock": clock,
        "hooks": hooks,
    }
    if hosts is not None:
        return DistributedLLMClient(
            hosts=hosts, circuit_breaker=breaker or CircuitBreakerConfig(), **options
        )
    # the hosts and breaker values the gateway finds in the settings
    client = configured_llm(
        settings if settings is not None else load_settings(), circuit_breaker=breaker, **options
    )
    if client is not None:
        return client
    raise ConfigurationError(
        "no LLM host is configured: set SERVICEGRID_LLM_URLS (comma-separated base URLs) "
        "or SERVICEGRID_LLM_SERVICE (a service found through discovery), "
        "or give hosts= or client="
    )


class ProductionLLMService:
    """Generation with rate limiting, retries with jitter, per-host breakers, failover,
    background health checks and metrics, plus embeddings (seed 004).

    The hosts come from ``client`` (used as given, not stopped by :meth:`stop`; ValueError
    with ``hosts``, ``settings``, ``pool_config`` or ``circuit_breaker_config``), else
    ``hosts``, else ``settings`` (default: read from the environment):
    ``SERVICEGRID_LLM_URLS`` with ``OPENAI_API_KEY``, else ``SERVICEGRID_LLM_SERVICE``
    through discovery; none of them raises ConfigurationError. Seed 004's defaults: 10
    requests/s with bursts of 20, 3 attempts with jitter, a breaker per host opening after
    5 failures for 60 s, a health check every 30 s, a pool of 100 connections (20 kept
    alive). ``model`` (default ``SERVICEGRID_LLM_MODEL``) is used when a request names none.
    ``embedding_service`` serves :meth:`embed`, started and stopped by its owner (default:
    a local :class:`~servicegrid.embeddings.ProductionEmbeddingService` of
    ``SERVICEGRID_EMBEDDING_MODEL``, made and started on first use, stopped by :meth:`stop`).
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        hosts: Sequence[LLMHost] | None = None,
        client: DistributedLLMClient | None = None,
        model: str | None = None,
        strategy: LoadBalancingStrategy | str = LoadBalancingStrategy.ROUND_ROBIN,
        timeout: float = 120.0,
        pool_config: ConnectionPoolConfig | None = None,
        retry_config: RetryConfig | None = None,
        circuit_breaker_config: CircuitBreakerConfig | None = None,
        rate_limit_config: RateLimitConfig | None = None,
        health_check_interval: float = 30.0,
        embedding_service: ProductionEmbeddingService | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
    ) -> None:
        if client is not None:
            given: dict[str, object] = {
                "hosts": hosts,
                "settings": settings,
                "pool_config": pool_config,
                "circuit_breaker_config": circuit_breaker_config,
            }
            if clashing := [name for name, value in given.items() if value is not None]:
                raise ValueError(f"client= is used as given: {', '.join(clashing)} cannot apply")
        elif hosts is None and settings is None:
            settings = load_settings()
        self.settings = settings
        self.model = model if model is not None else (settings.llm_model if settings else None)
        self._owns_client = client is None
        self.client = client or _client_for(
            settings,
            hosts,
            strategy=strategy,
            timeout=timeout,
            pool=pool_config
            or ConnectionPoolConfig(max_connections=100, max_keepalive_connections=20),
            breaker=circuit_breaker_config,
            clock=clock,
            hooks=hooks,
        )
        self.retry_config = retry_config or RetryConfig(max_retries=3, jitter=True)
        self._pipeline = build_pipeline(
            name=_NAME,
            retry=self.retry_config.retry_spec(),
            limiter=rate_limit_config or RateLimitConfig(requests_per_second=10.0, burst_size=20),
            clock=clock,
            hooks=hooks,
        )
        self.rate_limiter = self._pipeline.limiter
        self.health_monitor = HealthMonitor(
            self._probe_hosts, name=_NAME, interval=health_check_interval, clock=clock
        )
        self._last_hosts: dict[str, dict[str, Any]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._embedding = embedding_service
        self._owns_embedding = embedding_service is None
        self._embedding_lock = asyncio.Lock()
        self._clock = clock
        self.state = ClientState.UNOPENED
        self._started_at: float | None = None
        self.requests_total = 0
        self.errors_total = 0
        self.generation_count = 0
        self.embedding_count = 0
        self.total_tokens_used = 0
        self.total_response_time = 0.0

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the client (asking discovery for hosts, if it uses it) and the background
        health checks; idempotent."""
        if self.state is ClientState.CLOSED:
            raise ClientStateError(f"{_NAME} is stopped; make a new one", service=_NAME)
        if self.state is ClientState.OPENED:
            return
        await self.client.start()
        self.state = ClientState.OPENED
        self._started_at = self._clock.now()
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch_hosts(), name=f"{_NAME}:health-checks"
        )

    async def stop(self) -> None:
        """Stop the health checks, the client and the embedding service this service made;
        later calls raise ClientStateError. Idempotent."""
        if self.state is ClientState.CLOSED:
            return
        self.state = ClientState.CLOSED
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.wait({self._watcher})
        if self._owns_client:
            await self.client.stop()
        if self._owns_embedding and self._embedding is not None:
            await self._embedding.stop()

    async def __aenter__(self) -> ProductionLLMService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _check_started(self, what: str) -> None:
        if self.state is ClientState.OPENED:
            return
        why = "call await start() first" if self.state is ClientState.UNOPENED else "it is stopped"
        raise ClientStateError(f"{_NAME}: cannot {what}, {why}", service=_NAME)

    # ---- generation and embeddings ------------------------------------------------------

    async def generate(self, request: LLMRequest) -> LLMResponse:
        """A chat completion for ``request``, after waiting for the rate limiter if need be;
        raises the typed error of the last failure (ServiceUnavailable when every host's
        breaker is open)."""
        self._check_started("generate")
        if not isinstance(request, LLMRequest):
            raise ValidationError.for_field(
                "request", f"must be an LLMRequest, got {type(request).__name__}", type="type_error"
            )
        started = self._clock.now()
        self.requests_total += 1
        try:
            answer: ChatCompletion = await self._pipeline.acall(
                self.client.chat,
                request.messages(),
                model=request.model or self.model,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
            )
        except Exception:
            self.errors_total += 1
            raise
        finally:
            elapsed = self._clock.now() - started
            self.total_response_time += elapsed
        self.generation_count += 1
        self.total_tokens_used += total_tokens(answer.usage)
        return LLMResponse(
            text=answer.content,
            model=answer.model,
            usage=dict(answer.usage),
            latency_ms=elapsed * 1000.0,
            host=answer.host,
            finish_reason=answer.finish_reason,
            raw=answer.raw,
        )

    async def embed(self, texts: str | list[str]) -> list[EmbeddingResult]:
        """Embed ``texts`` (one string or a list) through the embedding service; a list of
        results either way. Raises ValidationError for bad input."""
        self._check_started("embed")
        service = await self._embedding_service()
        results = await service.embed([texts] if isinstance(texts, str) else texts)
        self.embedding_count += len(results)
        return results

    async def _embedding_service(self) -> ProductionEmbeddingService:
        async with self._embedding_lock:
            if self._embedding is None:
                from servicegrid.embeddings import DEFAULT_MODEL, ProductionEmbeddingService

                model = self.settings.embedding_model if self.settings else DEFAULT_MODEL
                self._embedding = ProductionEmbeddingService(model=model)
            if self._owns_embedding:
                await self._embedding.start()
            return self._embedding

    # ---- metrics and health -------------------------------------------------------------

    def get_metrics(self) -> dict[str, Any]:
        """Seed 004's counts; ``request_rate`` in requests/s since :meth:`start`,
        ``error_rate`` a fraction of requests, ``average_response_time`` in seconds."""
        total = self.requests_total
        mean = self.total_response_time / total if total else 0.0
        uptime = 0.0 if self._started_at is None else self._clock.now() - self._started_at
        return {
            "service": _NAME,
            "state": self.state.value,
            "generation_count": self.generation_count,
            "embedding_count": self.embedding_count,
            "total_tokens_used": self.total_tokens_used,
            "requests_total": total,
            "errors_total": self.errors_total,
            "request_rate": total / uptime if uptime > 0 else 0.0,
            "error_rate": self.errors_total / total if total else 0.0,
            "average_response_time": mean,
            "average_response_time_ms": mean * 1000.0,
            "uptime_seconds": uptime,
            "client": self.client.get_metrics(),
        }

    def _circuit_breakers(self) -> dict[str, Any]:
        hosts = self.client.get_metrics()["hosts"]
        states = {name: host["circuit_breaker"] for name, host in hosts.items()}
        # the service can take calls while any host's breaker lets them through
        found = set(states.values())
        overall = next((s for s in ("closed", "half_open") if s in found), "open")
        return {"state": overall, "hosts": states}

    async def _watch_hosts(self) -> None:
        """Check the hosts now and every ``health_check_interval`` seconds until cancelled."""
        this = asyncio.current_task()
        while True:
            await self.health_monitor.check_now()
            # On Python 3.11, asyncio.wait_for (inside check_now) drops a cancellation that
            # arrives as the check ends; without this look, stop() would wait forever.
            if this is not None and this.cancelling():
                return
            await self._clock.asleep(self.health_monitor.interval)

    async def _probe_hosts(self) -> bool:
        self._last_hosts = await self.client.health_check_all()
        return any(h["status"] == "healthy" for h in self._last_hosts.values())

    async def health_check(self) -> dict[str, Any]:
        """Probe every host now; seed 004's ``{"status", "metrics", "circuit_breaker",
        "rate_limiter"}`` plus ``hosts`` (each host's probe) and ``monitor``.

        ``status``: "healthy" when every enabled host is, "degraded" when some are,
        "unhealthy" when none is; "unknown" before :meth:`start`, "unhealthy" after :meth:`stop`.
        """
        if self.state is ClientState.OPENED:
            await self.health_monitor.check_now()
            probed = [h["status"] for h in self._last_hosts.values() if h["status"] != "disabled"]
            healthy = sum(s == "healthy" for s in probed)
            status = _SEVERITY[0 if probed and healthy == len(probed) else 1 if healthy else 2]
        else:
            status = "unknown" if self.state is ClientState.UNOPENED else "unhealthy"
        limiter = self.rate_limiter
        return {
            "status": status,
            "metrics": self.get_metrics(),
            "circuit_breaker": self._circuit_breakers(),
            "rate_limiter": limiter.get_status() if limiter is not None else None,
            "hosts": dict(self._last_hosts),
            "monitor": self.health_monitor.get_status(),
        }

    def __repr__(self) -> str:
        return f"ProductionLLMService({self.client!r})"
