"""Seed 000's client contract and the gRPC base every model-service client builds on.

.. code-block:: python

    client = EmbeddingClient(service_url="localhost:50052")          # seed 000
    client = EmbeddingClient(config=ServiceClientConfig("embedding:50052", timeout=60.0,
                                                         tenant_id="acme"))
    async with client:
        response = await client.generate_embeddings(["text"], timeout=60.0)
    client.get_status()          # the breaker, in seed 001's shape

Every RPC goes through the transport seam: a
:class:`~servicegrid.transports.resilient.ResilientTransport` (retry → circuit
breaker, built by :func:`~servicegrid.resilience.build_pipeline`) over a
:class:`~servicegrid.transports.grpc_transport.GrpcTransport`, which caps each
attempt at the call's deadline and sends the metadata of
:func:`~servicegrid.transports.grpc.call_metadata`. Failures come out as
servicegrid errors (``ServiceUnavailableError``, ``DeadlineExceeded``,
``ValidationError``, ...) that are also ``grpc.RpcError`` instances, with
``code()`` and ``details()``, so seed 000's
``CircuitBreaker(..., expected_exception=grpc.RpcError)`` counts them.

A client may be made once and used from any event loop and thread: its
breaker and status are shared, and a channel is opened per loop on first use.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar, Self

import grpc
import grpc.aio
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from servicegrid._validate import check_number
from servicegrid.clients.grpc_checks import invalid_argument, require_message, require_strings
from servicegrid.clients.grpc_config import ServiceClientConfig
from servicegrid.clients.state import ClientState
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.balancer import BalancedTransport
from servicegrid.discovery.base import Instance
from servicegrid.discovery.resolver import Discovery
from servicegrid.discovery.urls import is_discovery_url, parse_discovery_url
from servicegrid.errors import ClientStateError, ResourceNotFoundError, ServiceError
from servicegrid.hooks.logging import LoggingHook
from servicegrid.proto import common_pb2
from servicegrid.resilience import build_pipeline
from servicegrid.resilience.backoff import Backoff
from servicegrid.resilience.breaker import CircuitBreaker
from servicegrid.resilience.events import Hook
from servicegrid.resilience.policy import Policy
from servicegrid.resilience.retry import Retry
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry
from servicegrid.transports.base import AsyncTransport, Call
from servicegrid.transports.grpc import (
    ChannelOption,
    as_rpc_error,
    call_metadata,
    channel_credentials,
)
from servicegrid.transports.grpc_transport import GrpcTransport
from servicegrid.transports.probe import probe_health
from servicegrid.transports.resilient import ResilientTransport

__all__ = [
    "BaseServiceClient",
    "GrpcServiceClient",
    "ServiceClientConfig",
    "invalid_argument",
    "require_message",
    "require_strings",
]

_log = logging.getLogger("servicegrid.clients")

#: Seconds a health check waits at most, whatever the client's call timeout.
HEALTH_CHECK_TIMEOUT = 5.0


class BaseServiceClient(ABC):
    """Base class for all service clients (seed 000)."""

    def __init__(self, service_url: str, timeout: float = 30.0) -> None:
        self.service_url = service_url
        self.timeout = timeout

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """Check service health."""

    @abstractmethod
    async def get_stats(self) -> dict[str, Any]:
        """Get service statistics."""


class GrpcServiceClient(BaseServiceClient):
    """A gRPC client on the transport seam: retry, circuit breaker, one channel per event loop.

    Give either ``service_url`` (and ``timeout``) as seed 000 does, or a full
    ``config``. ``channel`` hands in a ready channel (used on its own loop only,
    never closed here); ``channel_options`` override the transport defaults.
    ``backoff`` and ``rng`` replace the retry waits built from the config,
    ``total_timeout`` (seconds) bounds a whole call, sleeps included.
    ``extra_policies`` run innermost, around each attempt. A ``service_url`` of
    ``discovery:///embedding-service`` finds the instances through ``discovery``
    (default: the process's) and balances over them, a breaker each
    (:class:`~servicegrid.discovery.BalancedTransport`). ``transport`` replaces
    the network (a :class:`~servicegrid.transports.MockTransport` answering with
    response messages, in tests). The client registers in ``registry`` under its
    ``service_name`` (None: not at all).

    Subclasses name their gRPC service in ``grpc_service_name``, their stub
    class in ``stub_class`` and their stats RPC in ``stats_method``.
    """

    default_service_name: ClassVar[str] = "grpc"
    grpc_service_name: ClassVar[str] = ""
    """Full gRPC name (``servicegrid.v1.EmbeddingService``), also asked about by health checks."""
    stub_class: ClassVar[type[Any] | None] = None
    stats_method: ClassVar[str | None] = None

    def __init__(
        self,
        service_url: str | None = None,
        timeout: float | None = None,
        *,
        config: ServiceClientConfig | None = None,
        service_name: str | None = None,
        channel: grpc.aio.Channel | None = None,
        channel_options: Sequence[ChannelOption] = (),
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        total_timeout: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
        extra_policies: Sequence[Policy] = (),
        transport: AsyncTransport | None = None,
        discovery: Discovery | None = None,
        registry: StatusRegistry | None = DEFAULT_REGISTRY,
    ) -> None:
        if config is None:
            if service_url is None:
                raise TypeError("give service_url= (and timeout=) or config=ServiceClientConfig()")
            config = ServiceClientConfig(
                service_url=service_url, timeout=30.0 if timeout is None else timeout
            )
        elif service_url is not None or timeout is not None:
            raise TypeError("give either config= or service_url=/timeout=, not both")
        super().__init__(config.service_url, config.timeout)
        if service_name is not None and (not isinstance(service_name, str) or not service_name):
            raise ValueError(f"service_name must be a non-empty string, got {service_name!r}")
        self.config = config
        self.service_name = service_name or self.default_service_name
        self._clock = clock
        self.state = ClientState.UNOPENED

        retry = config.retry_spec()
        if backoff is not None or total_timeout is not None:
            retry = replace(retry, backoff=backoff or retry.backoff, timeout=total_timeout)
        pipeline = build_pipeline(
            name=self.service_name,
            retry=retry,
            breaker=config.breaker_config(),
            extra=extra_policies,
            clock=clock,
            rng=rng,
            hooks=(LoggingHook(self.service_name, _log), *hooks),
        )
        self.retry = pipeline.require(Retry)
        self.circuit_breaker = pipeline.require(CircuitBreaker)
        # Read certificates now: a bad path is a configuration error, not a failed call.
        credentials = (
            channel_credentials(
                cert_path=config.tls_cert_path,
                key_path=config.tls_key_path,
                ca_path=config.tls_ca_path,
            )
            if config.use_tls
            else None
        )
        self.grpc: AsyncTransport = transport or self._network(
            credentials, channel_options, channel, discovery, hooks
        )
        self.transport = ResilientTransport(
            self.grpc, pipeline, name=self.service_name, clock=clock
        )
        if registry is not None:
            registry.register(self.service_name, self._status_reporter())

    def _network(
        self,
        credentials: grpc.ChannelCredentials | None,
        options: Sequence[ChannelOption],
        channel: grpc.aio.Channel | None,
        discovery: Discovery | None,
        hooks: Sequence[Hook],
    ) -> AsyncTransport:
        """One channel to the target, or, for ``discovery:///name``, one to each instance."""
        url = self.config.service_url
        if not is_discovery_url(url):
            return GrpcTransport(
                url,
                credentials=credentials,
                options=options,
                channel=channel,
                service=self.service_name,
            )
        name, _ = parse_discovery_url(url)

        def connect(instance: Instance) -> AsyncTransport:
            return GrpcTransport(
                instance.address,
                credentials=credentials,
                options=options,
                service=self.service_name,
            )

        return BalancedTransport(
            name,
            protocol="grpc",
            discovery=discovery,
            connect=connect,
            clock=self._clock,
            hooks=hooks,
        )

    def _status_reporter(self) -> Any:
        """What the status registry asks for this client's breaker status: the client itself.

        A client whose seed gives ``get_status`` another meaning (the GPU
        client's) hands over its breaker instead.
        """
        return self

    # ---- lifecycle -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self.state is ClientState.CLOSED:
            raise as_rpc_error(ClientStateError(f"{self.service_name}: the client is closed"))

    @property
    def channel(self) -> grpc.aio.Channel:
        """The running event loop's channel, opened on first use there."""
        self._check_open()
        if not isinstance(self.grpc, GrpcTransport):
            raise TypeError(f"{self.service_name} sends through {self.grpc!r}, not a channel")
        channel = self.grpc.channel()
        self.state = ClientState.OPENED
        return channel

    @property
    def stub(self) -> Any:
        """The generated stub on :attr:`channel`; calls on it bypass retry and breaker."""
        if self.stub_class is None:
            raise NotImplementedError(f"{type(self).__name__} names no stub_class")
        return self.stub_class(self.channel)

    async def aclose(self) -> None:
        """Close every channel this client opened; idempotent. Later calls raise
        :class:`~servicegrid.errors.ClientStateError` (a RuntimeError)."""
        self.state = ClientState.CLOSED
        await self.grpc.aclose()

    close = aclose

    async def __aenter__(self) -> Self:
        if isinstance(self.grpc, GrpcTransport):
            self.channel  # noqa: B018 - opens the channel
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- calls ---------------------------------------------------------------------

    def _per_call_timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return float(self.timeout)
        return check_number("timeout", timeout, inclusive=False)

    async def _call(
        self,
        method_name: str,
        request: Message,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Send ``request`` to ``method_name`` through the seam; returns the response message.

        ``timeout`` (seconds, default the client's) bounds each attempt, and so
        does whatever is left of the deadline in force. Raises a :class:`ServiceError`
        that is also a ``grpc.RpcError``.
        """
        per_attempt = self._per_call_timeout(timeout)
        self._check_open()
        what = f"{self.grpc_service_name or self.service_name}/{method_name}"
        # One request id and trace for the whole call: its retries are the same request.
        metadata = call_metadata(self.config.tenant_id, self.config.correlation_id)
        call = Call(f"/{what}", "", metadata, request, per_attempt, name=what)
        try:
            reply = await self.transport.asend(call)
        except ServiceError as error:
            raise as_rpc_error(error) from error.__cause__
        self.state = ClientState.OPENED
        return reply.body

    # ---- health, stats, status -----------------------------------------------------

    async def _serving_status(self, wait: float) -> str:
        """The grpc.health.v1 status name for this service, else for the whole server."""
        self._check_open()
        names = (self.grpc_service_name, "") if self.grpc_service_name else ("",)
        metadata = call_metadata(self.config.tenant_id, self.config.correlation_id)
        for name in names:
            try:
                health = await probe_health(
                    self.config.service_url,
                    timeout=wait,
                    service=name,
                    transport=self.grpc,
                    headers=metadata,
                    name=self.service_name,
                )
            except ResourceNotFoundError:
                if name:  # the server reports no status under our name: ask about the server
                    continue
                raise
            return health.status
        raise AssertionError("unreachable")  # pragma: no cover

    async def health_check(
        self,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Ask the standard grpc.health.v1 service, bypassing retry and breaker.

        Returns ``service``, ``service_url``, ``status`` (``"healthy"`` when
        SERVING, else ``"unhealthy"``), ``response_time_ms``, ``circuit_breaker``
        (its state) and either ``grpc_status`` or ``error``. ``timeout`` defaults
        to the smaller of the client's timeout and 5 s. Never raises a ServiceError.
        """
        wait = (
            min(float(self.timeout), HEALTH_CHECK_TIMEOUT)
            if timeout is None
            else check_number("timeout", timeout, inclusive=False)
        )
        started = self._clock.now()
        report: dict[str, Any] = {"service": self.service_name, "service_url": self.service_url}
        try:
            serving = await self._serving_status(wait)
        except ServiceError as error:
            report.update(status="unhealthy", error=str(error), error_type=type(error).__name__)
        else:
            report.update(
                status="healthy" if serving == "SERVING" else "unhealthy", grpc_status=serving
            )
        report["response_time_ms"] = 1000 * (self._clock.now() - started)
        report["circuit_breaker"] = self.circuit_breaker.state.value
        return report

    async def get_stats(
        self,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """The service's ``GetStats`` answer as a dict (proto field names, zeros included,
        int64 counters as ints); empty for a service without one. Raises a ServiceError."""
        if self.stats_method is None:
            return {}
        response = await self._call(self.stats_method, common_pb2.StatsRequest(), timeout=timeout)
        return MessageToDict(
            response,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            unquote_int64_if_possible=True,  # counters as ints, not JSON's int64 strings
        )

    def get_status(self) -> dict[str, Any]:
        """Seed 001's status: service, state, failure_count, last_failure, last_state_change."""
        return self.circuit_breaker.get_status()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.service_url!r}, service_name={self.service_name!r})"
