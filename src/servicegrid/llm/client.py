"""``DistributedLLMClient``: one client over several OpenAI-compatible LLM hosts (seed 004).

.. code-block:: python

    client = DistributedLLMClient(hosts=hosts, strategy=LoadBalancingStrategy.WEIGHTED_RANDOM)
    await client.start()
    response = await client.post("/v1/chat/completions", json=payload)  # an httpx.Response
    health = await client.health_check_all()
    await client.stop()

Every attempt goes to a host the strategy picks among those enabled, below
their ``max_concurrent``, and admitted by their own circuit breaker; failures
fail over as :mod:`servicegrid.llm.failover` says, and idempotent calls may
be hedged. Plain requests go through the transport seam (``Http1Transport``
unless ``transport=`` is given); streams through httpx
(:mod:`servicegrid.llm.streaming`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, Final, Self, TypeVar

import httpx

from servicegrid._validate import check_count, check_number
from servicegrid.client_state import ClientState
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery import Discovery
from servicegrid.errors import ClientStateError, ServiceError
from servicegrid.llm import plain
from servicegrid.llm.chat import (
    CHAT_PATH,
    ChatCompletion,
    Messages,
    chat_payload,
    delta_text,
    error_for_answer,
    parse_chat,
)
from servicegrid.llm.discovery import Discover, HostRefresher, from_registry
from servicegrid.llm.failover import AttemptFn, RouteStats, run, run_hedged
from servicegrid.llm.health import probe
from servicegrid.llm.hosts import (
    Attempt,
    HostMetrics,
    HostState,
    LLMHost,
    counts_against_host,
)
from servicegrid.llm.latency import LatencyEwma
from servicegrid.llm.pool import HostPool
from servicegrid.llm.strategies import LoadBalancingStrategy, picker_for
from servicegrid.llm.streaming import StreamOpener, iter_sse_data
from servicegrid.resilience.breaker import CircuitBreaker, CircuitBreakerConfig
from servicegrid.resilience.events import Hook
from servicegrid.transports.base import AsyncTransport, Call
from servicegrid.transports.http import (
    PhaseTimeouts,
    PoolLimits,
)
from servicegrid.transports.http1 import Http1Transport

__all__ = ["DistributedLLMClient"]

T = TypeVar("T")

_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class DistributedLLMClient:
    """Load balancing, per-host circuit breakers, failover and hedging over LLM hosts.

    Give ``hosts`` (unique names) or ``discover`` (asked at :meth:`start` and
    every ``refresh_interval`` seconds; hosts that stay keep their state).
    ``timeout`` (seconds) bounds a whole request, failover included;
    ``max_attempts`` (default: one per host) bounds its attempts.
    ``hedge_after`` (seconds, None: never) hedges idempotent calls.
    ``circuit_breaker`` configures each host's breaker, ``latency`` the
    estimate POWER_OF_TWO_CHOICES ranks by. ``headers`` go with every request.
    Raises ValueError for bad arguments.
    """

    def __init__(
        self,
        hosts: Sequence[LLMHost] | None = None,
        strategy: LoadBalancingStrategy | str = LoadBalancingStrategy.ROUND_ROBIN,
        *,
        discover: Discover | None = None,
        refresh_interval: float = 30.0,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_attempts: int | None = None,
        hedge_after: float | None = None,
        circuit_breaker: CircuitBreakerConfig | None = None,
        latency: LatencyEwma | None = None,
        health_timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        limits: PoolLimits | None = None,
        verify: bool | str = True,
        trust_env: bool = True,
        transport: AsyncTransport | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        hooks: Sequence[Hook] = (),
    ) -> None:
        if (hosts is None) == (discover is None):
            raise ValueError("give the LLM hosts as hosts= or discover=, exactly one of them")
        if hosts is not None:
            hosts = list(hosts)
            if not hosts:
                raise ValueError("hosts must not be empty")
            if bad := [h for h in hosts if not isinstance(h, LLMHost)]:
                raise ValueError(f"hosts must be LLMHost values, got {bad[0]!r}")
        self.strategy = LoadBalancingStrategy(strategy)
        self.timeout = check_number("timeout", timeout, inclusive=False)
        self.hedge_after = None if hedge_after is None else check_number("hedge_after", hedge_after)
        self.max_attempts = (
            None if max_attempts is None else check_count("max_attempts", max_attempts)
        )
        check_number("refresh_interval", refresh_interval, inclusive=False)
        self._health_timeout = check_number("health_timeout", health_timeout, inclusive=False)
        connect_timeout = check_number("connect_timeout", connect_timeout, inclusive=False)
        self._breaker_config = circuit_breaker or CircuitBreakerConfig()
        self._latency = latency or LatencyEwma()
        self._headers = dict(headers or {})
        self._clock = clock
        self._hooks = tuple(hooks)
        self._pool = HostPool(
            hosts or (),
            make_state=self._new_state,
            picker=picker_for(self.strategy),
            rng=rng or random.Random(),
        )
        limits = limits or PoolLimits(max_connections=100, max_keepalive_connections=100)
        self._owns_transport = transport is None
        self._transport: AsyncTransport = transport or Http1Transport(
            limits=limits,
            timeouts=PhaseTimeouts(connect=connect_timeout, read=timeout, write=timeout),
            verify=verify,
            trust_env=trust_env,
            service="llm",
        )
        self._streams = StreamOpener(
            timeout=timeout,
            connect_timeout=connect_timeout,
            limits=limits.as_httpx(),
            verify=verify,
            trust_env=trust_env,
        )
        self._stats = RouteStats()
        self._requests = 0
        self._failed = 0
        self._state = ClientState.UNOPENED
        self._refresher = (
            None
            if discover is None
            else HostRefresher(discover, self._pool, interval=refresh_interval, clock=clock)
        )

    @classmethod
    def from_discovery(
        cls, service: str, *, discovery: Discovery | None = None, **options: Any
    ) -> DistributedLLMClient:
        """A client over every instance of ``service`` found through discovery
        (``"llm-service"``, ``"LLM_SERVICE"``), refreshed every ``refresh_interval`` seconds."""
        return cls(discover=from_registry(service, discovery), **options)

    def _new_state(self, host: LLMHost) -> HostState:
        breaker = CircuitBreaker(
            name=host.name,
            config=self._breaker_config,
            counts_as_failure=counts_against_host,
            clock=self._clock,
            hooks=self._hooks,
        )
        return HostState(
            host, breaker=breaker, headers=self._headers, latency=self._latency, clock=self._clock
        )

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def hosts(self) -> tuple[LLMHost, ...]:
        """The hosts routed over now, in order."""
        return tuple(state.host for state in self._pool.states)

    async def start(self, *, wait_for_hosts: bool = True) -> None:
        """Ask discovery for the hosts (DiscoveryError if it fails; with ``wait_for_hosts``
        false, a failure is logged and calls find no host until a later answer) and keep
        asking in the background; with ``hosts=``, only marks the client open. Idempotent."""
        if self._state is ClientState.CLOSED:
            raise ClientStateError("the LLM client is stopped; make a new one")
        if self._state is ClientState.OPENED:
            return
        if self._refresher is not None:
            await self._refresher.start(strict=wait_for_hosts)
        self._state = ClientState.OPENED

    async def stop(self) -> None:
        """Stop refreshing and close every connection; later calls raise ClientStateError."""
        if self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        if self._refresher is not None:
            await self._refresher.stop()
        if self._owns_transport:
            await self._transport.aclose()
        await self._streams.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def refresh_hosts(self) -> None:
        """Ask discovery for the hosts now (DiscoveryError if it fails); no-op with ``hosts=``."""
        if self._refresher is not None:
            await self._refresher.refresh()

    def _check_usable(self, path: str) -> None:
        if self._state is ClientState.CLOSED:
            raise ClientStateError("the LLM client is stopped")
        if self._state is ClientState.UNOPENED and self._refresher is not None:
            raise ClientStateError("call start() first: the hosts come from discovery")
        if path.startswith(("http://", "https://")):
            raise ValueError(f"give a path on the hosts (/v1/...), not a URL: {path!r}")

    # ---- requests -----------------------------------------------------------------------

    async def request(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send ``method path`` (httpx's keyword arguments) to a host, failing over on
        retryable failures; a non-retryable 4xx comes back as it is. ``timeout=`` replaces
        the client's for this call. GET, HEAD and OPTIONS count as idempotent unless told."""
        return (await self._send_request(method.upper(), path, kwargs, idempotent))[1]

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, *, idempotent: bool = False, **kwargs: Any) -> httpx.Response:
        """POST; mark it ``idempotent`` to let ``hedge_after`` hedge it."""
        return await self.request("POST", path, idempotent=idempotent, **kwargs)

    def _budget(self, kwargs: dict[str, Any]) -> float:
        given = kwargs.pop("timeout", None)
        return self.timeout if given is None else check_number("timeout", given, inclusive=False)

    def _max_attempts(self) -> int:
        return max(self.max_attempts or len(self._pool), 1)

    async def _send_request(
        self, method: str, path: str, kwargs: dict[str, Any], idempotent: bool | None
    ) -> tuple[str, httpx.Response]:
        self._check_usable(path)
        deadline = self._clock.now() + self._budget(kwargs)

        def attempt(lease: Attempt, left: float) -> Awaitable[tuple[str, httpx.Response]]:
            call = lease.host.encoder.encode(method, path, kwargs)
            return self._send(lease, call, left)

        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        return await self._route(attempt, deadline, hedge=idempotent)

    async def _route(self, attempt: AttemptFn[T], deadline: float, *, hedge: bool) -> T:
        """Run one request's attempts, hedged when allowed and asked; count what happened."""
        self._requests += 1
        try:
            if hedge and self.hedge_after is not None and len(self._pool) > 1:
                return await run_hedged(
                    self._pool,
                    attempt,
                    hedge_after=self.hedge_after,
                    max_attempts=self._max_attempts(),
                    deadline=deadline,
                    clock=self._clock,
                    stats=self._stats,
                )
            return await run(
                self._pool,
                attempt,
                max_attempts=self._max_attempts(),
                deadline=deadline,
                clock=self._clock,
                stats=self._stats,
            )
        except ServiceError:
            self._failed += 1
            raise

    async def _send(self, lease: Attempt, call: Call, left: float) -> tuple[str, httpx.Response]:
        return lease.host.name, await plain.send(self._transport, lease, call, left, self._clock)

    # ---- streams ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def stream(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """``async with client.stream("POST", path, json=...) as response``: the response as it
        arrives. Failover happens only before its first body byte; a failure after it raises
        ConnectionLost (or ReadTimeout) to the reader."""
        async with self._stream(method.upper(), path, kwargs) as (_, response):
            yield response

    @contextlib.asynccontextmanager
    async def _stream(
        self, method: str, path: str, kwargs: dict[str, Any]
    ) -> AsyncIterator[tuple[str, httpx.Response]]:
        self._check_usable(path)
        deadline = self._clock.now() + self._budget(kwargs)

        async def attempt(lease: Attempt, left: float) -> tuple[str, httpx.Response]:
            call = lease.host.encoder.encode(method, path, kwargs)
            return lease.host.name, await self._streams.open(lease, call, left)

        host, response = await self._route(attempt, deadline, hedge=False)
        try:
            yield host, response
        except ServiceError:
            self._failed += 1
            raise
        finally:
            await response.aclose()

    # ---- chat ---------------------------------------------------------------------------

    async def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        idempotent: bool = False,
        **params: Any,
    ) -> ChatCompletion:
        """POST a chat completion and parse the answer; ``params`` go into the request body.

        Raises the typed error of an error status, InvalidResponse for an answer that is not
        a completion."""
        body = chat_payload(messages, model, params)
        host, response = await self._send_request("POST", CHAT_PATH, {"json": body}, idempotent)
        if response.status_code >= 400:
            raise error_for_answer(response, host)
        return parse_chat(response.content, host)

    async def stream_chat(
        self, messages: Messages, *, model: str | None = None, **params: Any
    ) -> AsyncIterator[str]:
        """The answer's text as it is generated (``stream: true``), one delta at a time."""
        body = chat_payload(messages, model, params, stream=True)
        async with self._stream("POST", CHAT_PATH, {"json": body}) as (host, response):
            if response.status_code >= 400:
                await response.aread()
                raise error_for_answer(response, host)
            async for data in iter_sse_data(response):
                if text := delta_text(data, host):
                    yield text

    # ---- health, hosts, metrics ---------------------------------------------------------

    async def health_check_all(self) -> dict[str, dict[str, Any]]:
        """Probe every host (``GET /health``, else ``GET /v1/models`` when that is 404):
        ``{name: {"status": "healthy"|"unhealthy"|"disabled", "response_time_ms",
        "circuit_breaker", "url", "error" (when unhealthy)}}``. Probes do not move breakers."""
        states = self._pool.states
        results = await asyncio.gather(
            *(
                probe(state, self._transport, within=self._health_timeout, clock=self._clock)
                for state in states
            )
        )
        return {state.name: result for state, result in zip(states, results, strict=True)}

    def enable_host(self, name: str) -> None:
        """Route to host ``name`` again; KeyError for an unknown name."""
        self._pool.get(name).enabled = True

    def disable_host(self, name: str) -> None:
        """Send host ``name`` no new calls (those in flight finish); KeyError if unknown."""
        self._pool.get(name).enabled = False

    def host_metrics(self, name: str) -> HostMetrics:
        """A snapshot of host ``name``; KeyError for an unknown name."""
        return self._pool.get(name).snapshot()

    def get_metrics(self) -> dict[str, Any]:
        """Totals and every host's metrics (:class:`HostMetrics` as dicts), JSON-ready."""
        states = self._pool.states
        return {
            "strategy": self.strategy.value,
            "total_requests": self._requests,
            "total_errors": self._failed,
            "failovers": self._stats.failovers,
            "hedged_requests": self._stats.hedges,
            "in_flight": sum(state.in_flight for state in states),
            "hosts_total": len(states),
            "hosts_enabled": sum(state.enabled for state in states),
            "hosts": {state.name: state.snapshot().as_dict() for state in states},
        }

    def __repr__(self) -> str:
        names = [state.name for state in self._pool.states]
        return f"DistributedLLMClient(hosts={names}, strategy={self.strategy.value})"
