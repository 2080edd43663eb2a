"""``AppGrpcClient``: the gRPC base of seed 002's application clients, answering the REST
client's dicts.

.. code-block:: python

    client = UserServiceGRPCClient()                 # discovery:///user-service, its gRPC face
    await client.connect()
    user = await client.get_user("user-123")         # the same dict as over REST
    await client.aclose()

It is a :class:`~servicegrid.clients.grpc_base.GrpcServiceClient` (the transport seam,
one channel per event loop) whose pipelines are the REST client's
(:func:`~servicegrid.clients.app_rest.app_pipelines`): reads and deletes retry every
retryable failure, creates and updates go out once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any, ClassVar

from google.protobuf.message import Message

from servicegrid import catalogue
from servicegrid.client_state import ClientState
from servicegrid.clients.app_rest import DEFAULT_BREAKER, DEFAULT_RETRY, app_pipelines
from servicegrid.clients.grpc_base import GrpcServiceClient, ServiceClientConfig, invalid_argument
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import ServiceError
from servicegrid.hooks.logging import LoggingHook
from servicegrid.resilience.breaker import CircuitBreaker, CircuitBreakerConfig
from servicegrid.resilience.events import Hook
from servicegrid.resilience.retry import Retry
from servicegrid.resilience.retry_spec import RetrySpec
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry
from servicegrid.transports.base import AsyncTransport, Call
from servicegrid.transports.grpc import as_rpc_error, call_metadata
from servicegrid.transports.grpc_transport import GrpcTransport
from servicegrid.transports.resilient import ResilientTransport

__all__ = ["AppGrpcClient"]

_log = logging.getLogger("servicegrid.clients")


class AppGrpcClient(GrpcServiceClient):
    """A client of one seed 002 service over gRPC, with the REST client's answers as dicts.

    ``target`` None means ``discovery:///<its discovery name>``, whose gRPC face
    is registered as ``<name>-grpc``. ``use_tls`` with ``ca_path`` (trust) and
    ``cert_path`` + ``key_path`` (mutual TLS) makes the channel secure.
    Otherwise as :class:`AppRestClient`.
    """

    catalogue_name: ClassVar[str] = ""

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout: float | None = None,
        use_tls: bool = False,
        cert_path: str | None = None,
        key_path: str | None = None,
        ca_path: str | None = None,
        discovery: Discovery | None = None,
        retry: RetrySpec = DEFAULT_RETRY,
        breaker: CircuitBreakerConfig = DEFAULT_BREAKER,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        hooks: Sequence[Hook] = (),
        transport: AsyncTransport | None = None,
        registry: StatusRegistry | None = DEFAULT_REGISTRY,
    ) -> None:
        spec = catalogue.lookup(self.catalogue_name)
        config = ServiceClientConfig(
            service_url=f"discovery:///{spec.discovery_name}" if target is None else target,
            timeout=spec.timeout if timeout is None else timeout,
            use_tls=use_tls,
            tls_cert_path=cert_path,
            tls_key_path=key_path,
            tls_ca_path=ca_path,
        )
        name = f"{spec.name}-grpc"
        super().__init__(
            config=config,
            service_name=name,
            clock=clock,
            hooks=hooks,
            transport=transport,
            discovery=discovery,
            registry=registry,
        )
        # the base's pipeline knows seed 000's config only: these follow the REST client's
        everyone: tuple[Hook, ...] = (LoggingHook(name, _log), *hooks)
        safe, once = app_pipelines(
            name, retry=retry, breaker=breaker, clock=clock, rng=rng, hooks=everyone
        )
        self.retry = safe.require(Retry)
        self.circuit_breaker = safe.require(CircuitBreaker)
        self.transport = ResilientTransport(self.grpc, safe, name=name, clock=clock)
        self._once = ResilientTransport(self.grpc, once, name=name, clock=clock)

    async def connect(self) -> None:
        """Open this event loop's channel; nothing is sent, so a service not up yet is no error."""
        self._check_open()
        if isinstance(self.grpc, GrpcTransport):
            self.grpc.channel()
        self.state = ClientState.OPENED

    async def _rpc(self, method: str, request: Message, *, idempotent: bool = True) -> Any:
        """Send ``request`` to ``method``; a call not ``idempotent`` retries only failures to
        connect. Returns the response message; raises a ServiceError that is a grpc.RpcError."""
        if idempotent:
            return await self._call(method, request)
        self._check_open()
        what = f"{self.grpc_service_name}/{method}"
        metadata = call_metadata(self.config.tenant_id, self.config.correlation_id)
        call = Call(f"/{what}", "", metadata, request, float(self.timeout), name=what)
        try:
            reply = await self._once.asend(call)
        except ServiceError as error:
            raise as_rpc_error(error) from error.__cause__
        self.state = ClientState.OPENED
        return reply.body

    def _id(self, field: str, value: object) -> str:
        """``value`` if it is a non-empty string; else a ValidationError (a grpc.RpcError)."""
        if not isinstance(value, str) or not value.strip():
            raise invalid_argument(
                self.service_name, field, f"must be a non-empty string, got {value!r}"
            )
        return value
