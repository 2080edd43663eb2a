"""What both integration clients share: configuration, one breaker, and the two ways to send.

Every call goes through the transport seam: one
:class:`~servicegrid.transports.resilient.ResilientTransport` per kind of
operation (its own retry, the shared breaker) over one
:class:`~servicegrid.transports.httpx_transport.HttpxTransport`, balanced over
the discovered instances when ``base_url`` is ``discovery:///<service>``.
``_send`` sends from the calling thread and ``_asend`` from the event loop; both
check the reply with :func:`~servicegrid.clients.integration.answers.answer`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, TypedDict, Unpack

import httpx

from servicegrid import catalogue
from servicegrid._validate import check_number
from servicegrid.clients.integration.answers import answer
from servicegrid.clients.integration.policies import (
    INTEGRATION_RETRY_POLICIES,
    OperationRetryPolicy,
    OperationType,
)
from servicegrid.clients.integration.requests import Request, to_call
from servicegrid.clients.resilient import validate_base_url
from servicegrid.clients.state import ClientState
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.balancer import BalancedTransport, balanced_http
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import ClientStateError
from servicegrid.resilience import CircuitBreaker, CircuitBreakerConfig, build_pipeline
from servicegrid.resilience.events import Hook
from servicegrid.transports.base import Call, Reply
from servicegrid.transports.http import PhaseTimeouts
from servicegrid.transports.httpx_transport import HttpxTransport
from servicegrid.transports.resilient import Check, ResilientTransport

__all__ = ["DEFAULT_BASE_URL", "SERVICE_NAME", "ClientOptions", "IntegrationConnection"]

DEFAULT_BASE_URL: Final = catalogue.lookup("integration").default_address
SERVICE_NAME: Final = "service-integration"  # seed 003's name for it in errors (an alias)


class ClientOptions(TypedDict, total=False):
    """The keyword options both clients take besides their transports.

    ``service_name`` (``"service-integration"``) names the service in errors and
    the breaker; ``retry_policies`` replaces the policy of the operation types it
    names; ``circuit_breaker_config`` configures the one breaker guarding every
    call; ``headers`` go with every request; ``clock`` drives every sleep (backoff,
    polling) and ``rng`` the jitter; ``hooks`` hear the resilience events;
    ``discovery`` resolves a ``discovery:///<service>`` base URL.
    """

    service_name: str
    retry_policies: Mapping[OperationType, OperationRetryPolicy] | None
    circuit_breaker_config: CircuitBreakerConfig | None
    headers: Mapping[str, str] | None
    clock: Clock
    rng: random.Random | None
    hooks: Sequence[Hook]
    discovery: Discovery | None


class IntegrationConnection:
    """Configuration, policies and both send paths; the base of both clients.

    ``transport`` (event loops) and ``sync_transport`` (threads) replace httpx's
    network layer. The state follows :class:`ClientState`: the first call opens
    it, closing it makes every later call raise ClientStateError.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sync_transport: httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.base_url = validate_base_url(base_url)
        self.timeout = check_number("timeout", timeout, inclusive=False)
        self.service_name = service_name = options.get("service_name", SERVICE_NAME)
        self.headers = dict(options.get("headers") or {})
        self.retry_policies: Mapping[OperationType, OperationRetryPolicy] = MappingProxyType(
            {**INTEGRATION_RETRY_POLICIES, **(options.get("retry_policies") or {})}
        )
        self._clock = clock = options.get("clock", SYSTEM_CLOCK)
        hooks = options.get("hooks", ())
        self.circuit_breaker = CircuitBreaker(
            name=service_name,
            config=options.get("circuit_breaker_config") or CircuitBreakerConfig(),
            clock=clock,
            hooks=hooks,
        )
        every_phase = PhaseTimeouts(self.timeout, self.timeout, self.timeout, self.timeout)
        self.http: HttpxTransport | BalancedTransport = balanced_http(
            self.base_url,
            HttpxTransport(
                timeouts=every_phase,
                transport=sync_transport,
                async_transport=transport,
                service=service_name,
            ),
            service=service_name,
            discovery=options.get("discovery"),
            clock=clock,
            hooks=hooks,
        )
        rng = options.get("rng") or random.Random()
        self._transports = {
            op: ResilientTransport(
                self.http,
                build_pipeline(
                    name=service_name,
                    retry=policy.retry_spec(op),
                    breaker=self.circuit_breaker,
                    clock=clock,
                    rng=rng,
                    hooks=hooks,
                ),
                name=service_name,
                clock=clock,
            )
            for op, policy in self.retry_policies.items()
        }
        self.state = ClientState.UNOPENED

    def _check_open(self) -> None:
        if self.state is ClientState.CLOSED:
            raise ClientStateError(f"{self.service_name}: the client is closed")
        self.state = ClientState.OPENED

    def _call(self, request: Request) -> Call:
        return to_call(request, base_url=self.base_url, headers=self.headers, timeout=self.timeout)

    def _checking(self, request: Request, answers: list[dict[str, Any]]) -> Check:
        """The reply check of ``request``: raises for a failed answer, keeps a good one's JSON."""

        def check(call: Call, reply: Reply) -> None:
            answers[:] = [answer(call, reply, request, self.service_name)]

        return check

    def _send(self, request: Request) -> dict[str, Any]:
        """Send ``request`` from this thread through its operation's retry and the breaker."""
        self._check_open()
        answers: list[dict[str, Any]] = []
        transport = self._transports[request.op]
        transport.send(self._call(request), check=self._checking(request, answers))
        return answers[0]

    async def _asend(self, request: Request) -> dict[str, Any]:
        """Send ``request`` from the event loop through its operation's retry and the breaker."""
        self._check_open()
        answers: list[dict[str, Any]] = []
        transport = self._transports[request.op]
        await transport.asend(self._call(request), check=self._checking(request, answers))
        return answers[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"
