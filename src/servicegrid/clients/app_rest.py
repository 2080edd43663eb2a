"""The REST base of seed 002's application clients, ``AppRestClient``, and what the gRPC base
(:mod:`servicegrid.clients.app_grpc`) shares with it: the pipelines, TLS, answers as dicts.

.. code-block:: python

    client = UserServiceClient()                     # discovery:///user-service
    user = await client.get_user("user-123")
    await client.aclose()

    client = UserServiceGRPCClient()                 # the same service's gRPC face
    await client.connect()
    user = await client.get_user("user-123")         # the same dict as over REST
    await client.aclose()

Both send through the transport seam: a
:class:`~servicegrid.transports.resilient.ResilientTransport` over the network
(:class:`~servicegrid.transports.http1.Http1Transport` or a
:class:`~servicegrid.transports.grpc_transport.GrpcTransport`), or, with no
address given, over a :class:`~servicegrid.discovery.BalancedTransport` across
the instances discovery knows. Two pipelines share ONE circuit breaker: calls
that are safe to repeat (GET, DELETE; gRPC reads and deletes) retry every
retryable failure, the others (POST, PATCH; creates and updates) only a failure
to connect, which proves the request never left.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Final, Self
from urllib.parse import quote, urlencode

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from servicegrid import catalogue
from servicegrid._validate import check_number
from servicegrid.client_state import ClientState
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.balancer import (
    BalancedTransport,
    is_discovery_url,
    parse_discovery_url,
)
from servicegrid.discovery.functions import discover_service_async
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import (
    ClientStateError,
    ConnectError,
    ConnectTimeout,
    InvalidResponse,
    ServiceError,
    ValidationError,
)
from servicegrid.hooks.logging import LoggingHook
from servicegrid.resilience import build_pipeline
from servicegrid.resilience.breaker import CircuitBreaker, CircuitBreakerConfig
from servicegrid.resilience.events import Hook
from servicegrid.resilience.pipeline import Pipeline
from servicegrid.resilience.retry import Retry
from servicegrid.resilience.retry_spec import RetrySpec
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry
from servicegrid.transports.base import AsyncTransport, Call, Reply
from servicegrid.transports.http import StatusCheck, error_for_reply
from servicegrid.transports.http1 import Http1Transport
from servicegrid.transports.probe import probe_health
from servicegrid.transports.resilient import ResilientTransport

__all__ = [
    "DEFAULT_BREAKER",
    "DEFAULT_RETRY",
    "AppRestClient",
    "app_pipelines",
    "message_dict",
    "tls_context",
]

_log = logging.getLogger("servicegrid.clients")

DEFAULT_RETRY: Final = RetrySpec(attempts=3)
"""3 attempts in all, waiting 0.1 s, then 0.2 s (full jitter, 5 s at most)."""
DEFAULT_BREAKER: Final = CircuitBreakerConfig(failure_threshold=5, recovery_timeout=30.0)
"""5 failed attempts in a row open the breaker for 30 s."""
HEALTH_CHECK_TIMEOUT: Final = 5.0
_JSON: Final = "application/json"


def _never_sent(error: BaseException) -> bool:
    """Whether ``error`` proves the request never reached the service (safe to send again)."""
    return isinstance(error, ConnectError | ConnectTimeout)


def app_pipelines(
    name: str,
    *,
    retry: RetrySpec,
    breaker: CircuitBreakerConfig,
    clock: Clock,
    rng: random.Random | None,
    hooks: Sequence[Hook],
) -> tuple[Pipeline, Pipeline]:
    """(for calls safe to repeat, for the others): retry → ONE shared breaker; the second
    retries only failures to connect."""
    shared = CircuitBreaker(name=name, config=breaker, clock=clock, hooks=tuple(hooks))
    parts: dict[str, Any] = {"name": name, "breaker": shared, "clock": clock, "hooks": hooks}
    safe = build_pipeline(retry=retry, rng=rng, **parts)
    once = build_pipeline(retry=replace(retry, on=_never_sent), rng=rng, **parts)
    return safe, once


def tls_context(
    verify: bool | str, cert: str | tuple[str, str] | None
) -> bool | str | ssl.SSLContext:
    """What :class:`Http1Transport` takes as ``verify=``: an SSLContext when a CA bundle or a
    client certificate is given (read now: a bad path is a ValueError), else ``verify``."""
    if cert is None and not isinstance(verify, str):
        return verify
    try:
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            import certifi  # the roots Http1Transport trusts by default

            context = ssl.create_default_context(
                cafile=verify if isinstance(verify, str) else certifi.where()
            )
        if cert is not None:
            certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
            context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"TLS: cannot load verify={verify!r} / cert={cert!r}: {error}") from error
    return context


def message_dict(message: Message) -> dict[str, Any]:
    """``message`` as its REST twin's JSON: proto field names, defaults included, ints as ints."""
    return MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )


def _detail(reply: Reply) -> tuple[str | None, list[Any]]:
    """The message and field errors of an error answer's JSON ``detail``, if it has one."""
    try:
        body = reply.json()
    except ValueError:
        return None, []
    if not isinstance(body, dict):
        return None, []
    detail = body.get("detail")
    problems = body.get("validation_errors")
    problems = problems if isinstance(problems, list) else []
    if isinstance(detail, str) and detail:
        return detail, problems
    if isinstance(detail, list) and detail:  # FastAPI's own 422: [{"loc", "msg", "type"}]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc", ())]
                field = ".".join(loc[1:] if loc[:1] in (["body"], ["query"], ["path"]) else loc)
                parts.append(f"{field}: {item.get('msg', '')}" if field else item.get("msg"))
        return "; ".join(str(part) for part in parts) or None, detail
    return None, problems


class AppRestClient:
    """A JSON client of one seed 002 service over REST; see the module docstring.

    ``base_url`` None means ``discovery:///<its discovery name>`` through
    ``discovery`` (default: the process's). ``timeout`` (seconds) bounds each
    attempt; the catalogue's value by default. ``verify`` is False, True or a CA
    bundle path; ``cert`` a client certificate file (with its key) or a
    (cert, key) pair, for mutual TLS. ``transport`` replaces the network (a
    :class:`~servicegrid.transports.MockTransport` in tests). Nothing is opened
    before the first call.
    """

    catalogue_name: ClassVar[str] = ""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float | None = None,
        discovery: Discovery | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: RetrySpec = DEFAULT_RETRY,
        breaker: CircuitBreakerConfig = DEFAULT_BREAKER,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        hooks: Sequence[Hook] = (),
        transport: AsyncTransport | None = None,
        registry: StatusRegistry | None = DEFAULT_REGISTRY,
    ) -> None:
        spec = catalogue.lookup(self.catalogue_name)
        self.service_name = spec.name
        url = f"discovery:///{spec.discovery_name}" if base_url is None else base_url.strip()
        if is_discovery_url(url):
            name, rest = parse_discovery_url(url)
            url = f"discovery:///{name}{rest}"
        elif not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"base_url must be http(s):// or discovery:///<name>, got {url!r}")
        self.base_url = url.rstrip("/")
        self.timeout = check_number(
            "timeout", spec.timeout if timeout is None else timeout, inclusive=False
        )
        self.state = ClientState.UNOPENED
        self._clock = clock
        self._discovery = discovery
        self._headers = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self.http: AsyncTransport = transport or Http1Transport(
            verify=tls_context(verify, cert), service=self.service_name
        )
        network: AsyncTransport = self.http
        if is_discovery_url(self.base_url):
            network = BalancedTransport(
                parse_discovery_url(self.base_url)[0],
                protocol="http",
                discovery=discovery,
                inner=self.http,
                check=self._instance_check,
                clock=clock,
                hooks=hooks,
            )
        self.network = network
        everyone: tuple[Hook, ...] = (LoggingHook(self.service_name, _log), *hooks)
        safe, once = app_pipelines(
            self.service_name, retry=retry, breaker=breaker, clock=clock, rng=rng, hooks=everyone
        )
        self.retry = safe.require(Retry)
        self.circuit_breaker = safe.require(CircuitBreaker)
        self._status = StatusCheck(client_errors=True, service=self.service_name)
        self._safe = ResilientTransport(
            network, safe, check=self._check, name=self.service_name, clock=clock
        )
        self._once = ResilientTransport(
            network, once, check=self._check, name=self.service_name, clock=clock
        )
        if registry is not None:
            registry.register(self.service_name, self)

    # ---- lifecycle -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self.state is ClientState.CLOSED:
            raise ClientStateError(f"{self.service_name}: the client is closed")

    async def aclose(self) -> None:
        """Close every connection; idempotent. Later calls raise ClientStateError."""
        if self.state is ClientState.CLOSED:
            return
        self.state = ClientState.CLOSED
        await self.network.aclose()
        if self.network is not self.http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- calls ---------------------------------------------------------------------

    def _passthrough(self, reply: Reply) -> bool:
        """Whether ``reply`` is an answer to hand back as it is, whatever its status."""
        return False

    def _instance_check(self, call: Call, reply: Reply) -> None:
        """What counts against one instance's breaker: its own 5xx answers."""
        if reply.status >= 500 and not self._passthrough(reply):
            raise error_for_reply(call, reply, service=self.service_name)

    def _check(self, call: Call, reply: Reply) -> None:
        """Raise the typed error for an error answer, its JSON ``detail`` as the message."""
        if self._passthrough(reply):
            return
        try:
            self._status(call, reply)
        except ServiceError as error:
            message, problems = _detail(reply)
            if message is None:
                raise
            extra: dict[str, Any] = (
                {"validation_errors": problems} if isinstance(error, ValidationError) else {}
            )
            raise type(error)(
                message,
                service=self.service_name,
                details=error.details,
                retry_after=error.retry_after,
                **extra,
            ) from None

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        body: object = None,
        idempotent: bool | None = None,
    ) -> Reply:
        """Send one request; ``idempotent`` (default: GET, HEAD, DELETE) chooses the retry."""
        self._check_open()
        query = urlencode([(k, str(v)) for k, v in (params or {}).items() if v is not None])
        url = self.base_url + path + (f"?{query}" if query else "")
        headers = (("accept", _JSON), *self._headers)
        data = None
        if body is not None:
            try:
                data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
            except (TypeError, ValueError) as error:
                raise ValidationError.for_field(
                    "body", f"must be JSON: {error}", service=self.service_name
                ) from None
            headers = (*headers, ("content-type", _JSON))
        call = Call(method, url, headers, data, self.timeout, name=f"{method} {path}")
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE")
        reply = await (self._safe if idempotent else self._once).asend(call)
        self.state = ClientState.OPENED
        return reply

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`_send`, returning the answer's JSON; InvalidResponse if it is not JSON."""
        reply = await self._send(method, path, **kwargs)
        try:
            return reply.json()
        except ValueError:
            raise InvalidResponse(
                f"{method} {path} answered HTTP {reply.status} without JSON: {reply.text[:200]}",
                service=self.service_name,
            ) from None

    def _id(self, field: str, value: object) -> str:
        """``value`` as a path segment if it is a non-empty string; else a ValidationError."""
        if not isinstance(value, str) or not value.strip():
            raise ValidationError.for_field(
                field, f"must be a non-empty string, got {value!r}", service=self.service_name
            )
        return quote(value, safe="")

    # ---- health and status ---------------------------------------------------------

    async def health_check(self, *, timeout: float | None = None) -> dict[str, Any]:
        """``GET /health`` of one instance, bypassing retry and breaker; never raises.

        Returns ``service``, ``service_url``, ``status`` (``"healthy"``/``"unhealthy"``),
        ``response_time_ms``, ``circuit_breaker`` and ``http_status`` or ``error``.
        """
        wait = (
            min(self.timeout, HEALTH_CHECK_TIMEOUT)
            if timeout is None
            else check_number("timeout", timeout, inclusive=False)
        )
        started = self._clock.now()
        report: dict[str, Any] = {"service": self.service_name, "service_url": self.base_url}
        try:
            self._check_open()
            url = self.base_url
            if is_discovery_url(url):
                name, rest = parse_discovery_url(url)
                found = await discover_service_async(name, "http", discovery=self._discovery)
                url = found.rstrip("/") + rest
            health = await probe_health(
                url,
                timeout=wait,
                transport=self.http,
                headers=self._headers,
                name=self.service_name,
            )
        except ServiceError as error:
            report.update(status="unhealthy", error=str(error), error_type=type(error).__name__)
        else:
            status = "healthy" if health.serving else "unhealthy"
            report.update(status=status, http_status=health.code)
        report["response_time_ms"] = 1000 * (self._clock.now() - started)
        report["circuit_breaker"] = self.circuit_breaker.state.value
        return report

    def get_status(self) -> dict[str, Any]:
        """Seed 001's status of the breaker: service, state, failure_count, ..."""
        return self.circuit_breaker.get_status()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"
