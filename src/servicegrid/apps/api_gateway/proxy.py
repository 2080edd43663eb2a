"""Forward a request to a discovered service, through the resilient client, and bring back
its answer as it came.

.. code-block:: python

    forwarder = ProxyForwarder(discovery, timeout=30.0)
    answer = await forwarder.forward(ProxyRequest(service="user-service", path="/users"))
    answer.status, answer.headers, answer.body        # the upstream's
    await forwarder.aclose()

Per upstream service, one :class:`~servicegrid.discovery.balancer.BalancedTransport`
over the shared HTTP/1.1 pool picks the instances (each with its breaker, which
counts 5xx answers), and a :class:`~servicegrid.transports.resilient.ResilientTransport`
over it bounds the call by ``timeout`` seconds and retries where that is safe:
an error before anything was sent (refused, connect timeout) for every method;
any retryable error for GET, HEAD, PUT and DELETE, which are idempotent. An
answer, 4xx and 5xx included, is never retried or raised here: it goes back to
the caller. With no answer the typed error is raised (503, 504...).

What is forwarded carries ``Via: 1.1 api-gateway``; the REST face refuses a proxy
request that carries it already, so a service that leads back here cannot loop.
Upstreams are kept per discovery name; only names discovery knows get one, so
their number is bounded by the registry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from servicegrid.apps.api_gateway.schemas import ProxyRequest
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.balancer import BalancedTransport
from servicegrid.discovery.base import ServiceName
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import (
    ClientStateError,
    ConnectError,
    ConnectTimeout,
    UnknownServiceError,
    ValidationError,
    is_retryable,
)
from servicegrid.resilience.backoff import ExponentialBackoff, Jitter
from servicegrid.resilience.pipeline import build_pipeline
from servicegrid.resilience.retry_spec import RetrySpec
from servicegrid.transports.base import AsyncTransport, Call
from servicegrid.transports.http import StatusCheck
from servicegrid.transports.http1 import Http1Transport
from servicegrid.transports.resilient import ResilientTransport

__all__ = [
    "HOP_BY_HOP",
    "IDEMPOTENT_METHODS",
    "SELF_NAMES",
    "VIA_NAME",
    "ProxyAnswer",
    "ProxyForwarder",
    "end_to_end",
    "has_passed_here",
    "never_sent",
]

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "host",
        "content-length",
    }
)
"""Headers about one connection, not the message; ``proxy-*`` ones too. Never forwarded."""

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE"})
SELF_NAMES: Final = frozenset({"api-gateway", "api-gateway-grpc"})
"""The gateway's own names in discovery: proxying to them would loop."""
VIA_NAME: Final = "api-gateway"
"""How the gateway names itself in the ``Via`` header of what it forwards (RFC 9110 7.6.3)."""

_ATTEMPTS: Final = 3
_BACKOFF: Final = ExponentialBackoff(initial=0.1, max=1.0, jitter=Jitter.EQUAL)
_DECODED: Final = frozenset({"gzip", "x-gzip", "deflate", "identity"})

_log = logging.getLogger("servicegrid.apps.api_gateway")


def has_passed_here(via: str | None) -> bool:
    """Whether a ``Via`` header says the request already went through this gateway (a loop)."""
    if not via:
        return False
    return any(hop.split()[-1:] == [VIA_NAME] for hop in via.split(",") if hop.strip())


def never_sent(error: BaseException) -> bool:
    """Whether ``error`` came before any byte of the request went out (safe to resend)."""
    return isinstance(error, ConnectError | ConnectTimeout)


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop ones: the fixed set, ``proxy-*``, and those that a
    ``Connection`` header names."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [
        (name, value)
        for name, value in pairs
        if (lower := name.lower()) not in HOP_BY_HOP
        and lower not in named
        and not lower.startswith("proxy-")
    ]


@dataclass(frozen=True, slots=True)
class ProxyAnswer:
    """What the upstream answered: its status, its end-to-end headers, its body bytes."""

    service: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Upstream:
    balanced: BalancedTransport
    idempotent: ResilientTransport
    other: ResilientTransport


class ProxyForwarder:
    """Forwards :class:`ProxyRequest` s; see the module docstring. ``timeout`` is seconds per
    call, retries included. ``allowed`` lists the services that may be proxied (empty: any
    that discovery knows). ``inner`` sends HTTP (default: a pooled ``Http1Transport``)."""

    def __init__(
        self,
        discovery: Discovery,
        *,
        timeout: float,
        allowed: Sequence[str] = (),
        inner: AsyncTransport | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be above zero, got {timeout!r}")
        self.discovery = discovery
        self.timeout = timeout
        self.allowed = frozenset(self._names_of(allowed))
        self._inner = inner or Http1Transport(trust_env=False, service="api-gateway")
        self._clock = clock
        self._upstreams: dict[str, _Upstream] = {}
        self._closed = False

    # ---- which services ----------------------------------------------------------------

    def _names_of(self, services: Iterable[str]) -> Iterator[str]:
        """Each of ``services`` as given and by its discovery name (``users``: ``user-service``)."""
        for service in services:
            yield service
            try:
                yield self.discovery.name(service).discovery_name
            except ValidationError:
                _log.warning("API_GATEWAY_PROXY_SERVICES: %r is not a service name", service)

    def _is_allowed(self, given: str, name: ServiceName) -> bool:
        return not self.allowed or bool({given, name.discovery_name} & self.allowed)

    async def resolve_service(self, service: str) -> str:
        """The discovery name to send to; ValidationError naming ``service`` when it is the
        gateway itself, not allowed, or unknown to discovery."""
        try:
            name = self.discovery.name(service)
        except ValidationError as error:
            raise ValidationError.for_field("service", error.message) from None
        if name.discovery_name in SELF_NAMES or (
            name.spec is not None and name.spec.name in SELF_NAMES
        ):
            raise ValidationError.for_field(
                "service", f"{service!r} is the API gateway itself; proxying to it would loop"
            )
        if not self._is_allowed(service, name):
            raise ValidationError.for_field(
                "service", f"{service!r} is not among API_GATEWAY_PROXY_SERVICES"
            )
        try:
            await self.discovery.resolve(name, "http")
        except UnknownServiceError:
            raise ValidationError.for_field(
                "service", f"{service!r} is not known to discovery"
            ) from None
        return name.discovery_name

    # ---- the transports ----------------------------------------------------------------

    def _upstream(self, service: str) -> _Upstream:
        upstream = self._upstreams.get(service)
        if upstream is None:
            balanced = BalancedTransport(
                service,
                protocol="http",
                discovery=self.discovery,
                inner=self._inner,
                check=StatusCheck(client_errors=False, service=service),
                clock=self._clock,
            )
            upstream = _Upstream(
                balanced,
                idempotent=self._resilient(balanced, is_retryable),
                other=self._resilient(balanced, never_sent),
            )
            self._upstreams[service] = upstream
        return upstream

    def _resilient(
        self, balanced: BalancedTransport, retry_on: Callable[[BaseException], bool]
    ) -> ResilientTransport:
        """``balanced`` within ``timeout`` per call, retrying the errors ``retry_on`` accepts."""
        retry = RetrySpec(attempts=_ATTEMPTS, backoff=_BACKOFF, on=retry_on)
        pipeline = build_pipeline(
            name=balanced.service, timeout=self.timeout, retry=retry, clock=self._clock
        )
        return ResilientTransport(balanced, pipeline, name=balanced.service, clock=self._clock)

    def _call(self, service: str, request: ProxyRequest) -> Call:
        headers = end_to_end(request.headers.items())
        via = [value for name, value in headers if name.lower() == "via"]
        headers = [pair for pair in headers if pair[0].lower() != "via"]
        headers.append(("Via", ", ".join([*via, f"1.1 {VIA_NAME}"])))
        body: bytes | None = None
        if request.body is not None:
            try:
                text = json.dumps(request.body, allow_nan=False, separators=(",", ":"))
            except ValueError:
                raise ValidationError.for_field(
                    "body", "must be JSON: NaN and Infinity have no JSON form"
                ) from None
            body = text.encode()
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("Content-Type", "application/json"))
        route = request.path.split("?", 1)[0]
        return Call(
            request.method,
            f"discovery:///{service}{request.path}",
            headers=tuple(headers),
            body=body,
            timeout=self.timeout,
            name=f"{request.method} {service}{route}",
        )

    # ---- forwarding --------------------------------------------------------------------

    async def forward(self, request: ProxyRequest) -> ProxyAnswer:
        """Send ``request`` to its service and return the answer, whatever its status.

        Raises ValidationError (``service``) as :meth:`resolve_service` does, and the
        typed error of the transport when no answer came (ConnectError,
        DeadlineExceeded, ServiceUnavailable...).
        """
        if self._closed:
            raise ClientStateError("the API gateway's proxy is closed")
        service = await self.resolve_service(request.service)
        upstream = self._upstream(service)
        send = upstream.idempotent if request.method in IDEMPOTENT_METHODS else upstream.other
        reply = await send.asend(self._call(service, request))
        headers = end_to_end(reply.header_items())
        encoding = reply.header("content-encoding")
        if encoding and {step.strip().lower() for step in encoding.split(",")} <= _DECODED:
            # the transport decoded the body: the header would now be a lie
            headers = [pair for pair in headers if pair[0].lower() != "content-encoding"]
        return ProxyAnswer(service, reply.status, tuple(headers), reply.content)

    def upstreams(self) -> dict[str, list[dict[str, object]]]:
        """Each upstream service's instances as its balancer sees them (breaker state, calls)."""
        return {name: up.balanced.instances() for name, up in self._upstreams.items()}

    async def aclose(self) -> None:
        """Close every upstream's transports and the shared pool; idempotent."""
        self._closed = True
        upstreams, self._upstreams = self._upstreams, {}
        for upstream in upstreams.values():
            try:
                await upstream.balanced.aclose()
            except Exception:
                _log.warning("closing the transport of %s failed", upstream.balanced.service)
        await self._inner.aclose()
