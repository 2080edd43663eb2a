"""Seed 000's client contract and the gRPC base every model-service client builds on.

.. code-block:: python

    client = EmbeddingClient(service_url="localhost:50052")          # seed 000
    client = EmbeddingClient(config=ServiceClientConfig("embedding:50052", timeout=60.0,
                                                         tenant_id="acme"))
    async with client:
        response = await client.generate_embeddings(["text"], timeout=60.0)
    client.get_status()          # the breaker, in seed 001's shape

Every RPC runs retry → circuit breaker → one attempt. Each attempt passes
``timeout=min(per-call timeout, time left before the call's deadline)`` and the
metadata of :func:`servicegrid.transports.grpc.call_metadata` to the stub, and
failures come out as servicegrid errors (``ServiceUnavailableError``,
``DeadlineExceeded``, ``ValidationError``, ...), never as ``grpc.RpcError``.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, cast

import grpc
import grpc.aio
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from servicegrid._validate import check_count, check_number
from servicegrid.clients.state import ClientState
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import (
    DeadlineExceeded,
    ResourceNotFoundError,
    ServiceError,
    ValidationError,
)
from servicegrid.hooks.logging import LoggingHook
from servicegrid.proto import common_pb2
from servicegrid.resilience import (
    CircuitBreaker,
    ExponentialBackoff,
    Pipeline,
    Retry,
    remaining,
)
from servicegrid.resilience.backoff import Backoff
from servicegrid.resilience.events import Hook
from servicegrid.resilience.policy import Policy
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry
from servicegrid.transports.grpc import (
    ChannelOption,
    call_metadata,
    channel_credentials,
    check_metadata_value,
    create_channel,
    map_grpc_errors,
)

if TYPE_CHECKING:
    from servicegrid.settings import Settings

__all__ = [
    "BaseServiceClient",
    "GrpcServiceClient",
    "ServiceClientConfig",
    "invalid_argument",
    "require_message",
    "require_strings",
]

_log = logging.getLogger("servicegrid.clients")

M = TypeVar("M", bound=Message)

#: Seconds a health check waits at most, whatever the client's call timeout.
HEALTH_CHECK_TIMEOUT = 5.0


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
        if url.lower().startswith(("http://", "https://")):
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
        """The config for ``service`` (``"embedding"``, ``"reranking"``, ...) from loaded settings:
        its URL and timeout plus the shared retry and breaker values; ``overrides`` win."""
        targets = settings.grpc_services
        if service not in targets:
            raise ValueError(f"unknown service {service!r}; known: {', '.join(targets)}")
        url, timeout = targets[service]
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


# ---- client-side request checks ------------------------------------------------------


def invalid_argument(service: str, field: str, message: str) -> ValidationError:
    """The ValidationError for one bad argument, raised before any RPC is sent."""
    return ValidationError(
        f"{field}: {message}",
        service=service,
        validation_errors=[{"field": field, "message": message}],
    )


def require_strings(service: str, field: str, value: object) -> list[str]:
    """``value`` as a list if it is a non-empty list or tuple of str; else a ValidationError."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise invalid_argument(
            service, field, f"must be a list of strings, got {type(value).__name__}"
        )
    if not value:
        raise invalid_argument(service, field, "must not be empty")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise invalid_argument(
                service, f"{field}[{index}]", f"must be a string, got {type(item).__name__}"
            )
    return list(value)


def require_message(service: str, field: str, value: object, kind: type[M]) -> M:
    """``value`` if it is a ``kind`` message; else a ValidationError naming ``field``."""
    if not isinstance(value, kind):
        raise invalid_argument(
            service, field, f"must be a {kind.__name__}, got {type(value).__name__}"
        )
    return value


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
    """A gRPC client with a lazily opened channel, retry and a circuit breaker.

    Give either ``service_url`` (and ``timeout``) as seed 000 does, or a full
    ``config``. ``channel`` hands in a ready channel (the client will not close
    it); ``channel_options`` override the transport defaults. ``backoff`` and
    ``rng`` replace the retry waits built from the config, ``total_timeout``
    (seconds) bounds a whole call, sleeps included. ``extra_policies`` run
    innermost, around each attempt. The client registers in ``registry`` under
    its ``service_name`` (None: not at all).

    Subclasses name their stub in :meth:`_create_stub`, their gRPC service in
    ``grpc_service_name`` and their stats RPC in ``stats_method``.
    """

    default_service_name: ClassVar[str] = "grpc"
    grpc_service_name: ClassVar[str] = ""
    """Full gRPC name (``servicegrid.v1.EmbeddingService``), also asked about by health checks."""
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
        self._channel_options = tuple(channel_options)
        # Read certificates now: a bad path is a configuration error, not a failed call.
        self._credentials = (
            channel_credentials(
                cert_path=config.tls_cert_path,
                key_path=config.tls_key_path,
                ca_path=config.tls_ca_path,
            )
            if config.use_tls
            else None
        )
        self._channel = channel
        self._owns_channel = channel is None
        self._stub: Any = None
        self.state = ClientState.UNOPENED

        all_hooks: tuple[Hook, ...] = (LoggingHook(self.service_name, _log), *hooks)
        self.circuit_breaker = CircuitBreaker(
            failure_threshold=config.circuit_breaker_threshold,
            recovery_timeout=config.circuit_breaker_timeout,
            name=self.service_name,
            clock=clock,
            hooks=all_hooks,
        )
        retry = Retry(
            attempts=config.retry_attempts,
            backoff=backoff
            or ExponentialBackoff(
                initial=config.retry_delay,
                max=config.max_retry_delay,
                factor=config.exponential_base,
            ),
            timeout=total_timeout,
            name=self.service_name,
            clock=clock,
            rng=rng or random.Random(),
            hooks=all_hooks,
        )
        self._pipeline = Pipeline(
            retry, self.circuit_breaker, *extra_policies, name=self.service_name
        )
        self.retry = cast(Retry, self._pipeline.policies[0])  # the copy wired to the breaker
        if registry is not None:
            registry.register(self.service_name, self._status_reporter())

    def _status_reporter(self) -> Any:
        """What the status registry asks for this client's breaker status: the client itself.

        A client whose seed gives ``get_status`` another meaning (the GPU
        client's) hands over its breaker instead.
        """
        return self

    # ---- lifecycle -----------------------------------------------------------------

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel, opened on first use (inside the event loop that uses it)."""
        if self.state is ClientState.CLOSED:
            raise RuntimeError(f"{self.service_name}: the client is closed")
        if self._channel is None:
            self._channel = create_channel(
                self.config.service_url,
                credentials=self._credentials,
                options=self._channel_options,
            )
        self.state = ClientState.OPENED
        return self._channel

    def _create_stub(self, channel: grpc.aio.Channel) -> Any:
        """The generated stub for this service (``EmbeddingServiceStub(channel)``)."""
        raise NotImplementedError(f"{type(self).__name__} defines no service stub")

    @property
    def stub(self) -> Any:
        """The generated stub on :attr:`channel`; calls on it bypass retry and breaker."""
        channel = self.channel
        if self._stub is None:
            self._stub = self._create_stub(channel)
        return self._stub

    async def aclose(self) -> None:
        """Close the channel if this client opened it; idempotent. Then calls raise RuntimeError."""
        channel, self._channel, self._stub = self._channel, None, None
        self.state = ClientState.CLOSED
        if channel is not None and self._owns_channel:
            await channel.close()

    close = aclose

    async def __aenter__(self) -> Self:
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
        """Send ``request`` to ``method_name`` through retry and breaker; returns the response.

        ``timeout`` (seconds, default the client's) bounds each attempt, and so
        does whatever is left of the deadline in force. Raises a :class:`ServiceError`.
        """
        per_attempt = self._per_call_timeout(timeout)
        method = getattr(self.stub, method_name)
        what = f"{self.grpc_service_name or self.service_name}/{method_name}"
        left = remaining(self._clock)
        if left is not None and left <= 0:
            # Out of time before anything was sent: the caller's problem, not the service's,
            # so it stays out of the breaker's count.
            raise DeadlineExceeded(
                f"{what}: the deadline passed before the call", service=self.service_name
            )
        # One request id and trace for the whole call: its retries are the same request.
        metadata = call_metadata(self.config.tenant_id, self.config.correlation_id)
        return await self._pipeline.acall(
            self._attempt, method, request, per_attempt, metadata, what
        )

    async def _attempt(
        self,
        method: Any,
        request: Message,
        per_attempt: float,
        metadata: tuple[tuple[str, str], ...],
        what: str,
    ) -> Any:
        left = remaining(self._clock)
        attempt_timeout = per_attempt if left is None else min(per_attempt, left)
        if attempt_timeout <= 0:
            raise DeadlineExceeded(
                f"{what}: the call's deadline passed before the attempt", service=self.service_name
            )
        with map_grpc_errors(self.service_name, what):
            return await method(request, timeout=attempt_timeout, metadata=metadata)

    # ---- health, stats, status -----------------------------------------------------

    async def _serving_status(self, wait: float) -> str:
        """The grpc.health.v1 status name for this service, else for the whole server."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        names = (self.grpc_service_name, "") if self.grpc_service_name else ("",)
        metadata = call_metadata(self.config.tenant_id, self.config.correlation_id)
        for name in names:
            try:
                with map_grpc_errors(self.service_name, "grpc.health.v1.Health/Check"):
                    response = await stub.Check(
                        health_pb2.HealthCheckRequest(service=name),
                        timeout=wait,
                        metadata=metadata,
                    )
            except ResourceNotFoundError:
                if name:  # the server reports no status under our name: ask about the server
                    continue
                raise
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
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
