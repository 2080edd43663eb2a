"""``ResilientServiceClient``: seed 001's synchronous HTTP client with retry and a circuit breaker.

.. code-block:: python

    from servicegrid import ResilientServiceClient, ServiceUnavailable

    chroma = ResilientServiceClient(
        os.getenv("CHROMA_SERVER_URL", "http://chroma:6003"), service_name="Chroma Server"
    )
    try:
        results = chroma.post("/query", json=data).json()
    except ServiceUnavailable:          # circuit open: the call was not made
        results = fallback_search()
    except requests.RequestException:   # a failure that survived its retries
        ...

Answers with a retryable status (5xx, 408, 429) are retried and, when the
retries run out, raised as an error that is both a servicegrid error and a
``requests.HTTPError`` carrying the last response. Other 4xx answers are
returned as they are, as ``requests`` would.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from servicegrid._validate import check_count, check_number
from servicegrid.clients._requests_compat import as_requests_error
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.balancer import balanced_http
from servicegrid.discovery.resolver import Discovery
from servicegrid.discovery.urls import is_discovery_url, parse_discovery_url
from servicegrid.errors import ServiceError
from servicegrid.hooks.logging import LoggingHook
from servicegrid.resilience import (
    CircuitBreakerConfig,
    ExponentialBackoff,
    Jitter,
    RetrySpec,
    build_pipeline,
)
from servicegrid.resilience.backoff import Backoff
from servicegrid.resilience.breaker import CircuitBreaker
from servicegrid.resilience.events import Hook
from servicegrid.resilience.policy import Policy
from servicegrid.resilience.retry import Retry
from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry
from servicegrid.transports.base import Call, Reply, Transport
from servicegrid.transports.http import StatusCheck
from servicegrid.transports.requests_transport import RequestsTransport
from servicegrid.transports.resilient import Check, ResilientTransport

__all__ = ["PRESETS", "ResilientServiceClient", "ServiceResponse", "validate_base_url"]

_log = logging.getLogger("servicegrid.clients")

#: Seed 001's configuration presets, by the kind of operation.
PRESETS: dict[str, dict[str, float]] = {
    "slow": {"max_retries": 3, "timeout": 15},
    "fast": {"max_retries": 2, "timeout": 5},
    "complex": {"max_retries": 3, "timeout": 30, "recovery_timeout": 90},
}


def validate_base_url(base_url: object) -> str:
    """Return ``base_url`` without a trailing slash, or raise ValueError saying what is wrong.

    ``discovery:///<service>[/base/path]`` names a discovered service, balanced over its
    instances.
    """
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    if is_discovery_url(base_url):
        parse_discovery_url(base_url)  # a service name is required
        return base_url.strip().rstrip("/")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    if not parts.hostname:
        raise ValueError(f"base_url has no host: {base_url!r}")
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as exc:
        raise ValueError(f"base_url has an invalid port: {base_url!r}") from exc
    return base_url.strip().rstrip("/")


class ServiceResponse(requests.Response):
    """A ``requests.Response`` whose ``.json()`` failure names the service and the content type."""

    service_name: str = ""

    def json(self, **kwargs: Any) -> Any:
        try:
            return super().json(**kwargs)
        except requests.JSONDecodeError as exc:
            kind = self.headers.get("content-type", "no content type")
            raise requests.JSONDecodeError(
                f"[{self.service_name}] {self.request.method if self.request else ''} "
                f"{self.url} answered HTTP {self.status_code} with a body that is not JSON "
                f"({kind}, {len(self.content)} bytes; starts {self.text[:60]!r})",
                exc.doc,
                exc.pos,
            ) from exc


def _as_response(call: Call, reply: Reply) -> requests.Response:
    """A ``requests.Response`` for a reply from a transport that made none (a MockTransport)."""
    response = requests.Response()
    response.status_code = reply.status
    response.headers.update(reply.header_items())
    response._content = reply.content
    response.url = call.url
    response.request = requests.Request(call.method, call.url).prepare()
    return response


class ResilientServiceClient:
    """Synchronous HTTP client with retry, exponential backoff and a circuit breaker (seed 001).

    ``max_retries`` is the number of attempts per call, the first included
    (seed 001 logs "attempt 1/3"); the waits between them are 1 s, 2 s, 4 s...
    ``timeout`` is the per-attempt timeout in seconds. ``failure_threshold``
    failed attempts in a row open the circuit for ``recovery_timeout`` seconds.

    ``extra_policies`` run innermost, around each attempt, after retry and
    breaker: a :class:`~servicegrid.resilience.FaultInjection` there makes the
    service look flaky to both, which is how reliability tests misbehave on purpose.

    Each call goes through ``requests.request`` (or ``session.request`` when a
    ``requests.Session`` is given for connection reuse): safe to share between
    threads, and patchable as seed 001's tests do. ``transport`` replaces the
    network entirely (a :class:`~servicegrid.transports.MockTransport` in tests);
    its replies' ``raw`` is returned when it is a ``requests.Response``.
    A ``base_url`` of ``discovery:///<service>`` spreads calls over the instances
    that ``discovery`` (default: the process's) finds, a circuit breaker each.
    """

    PRESETS: ClassVar[dict[str, dict[str, float]]] = PRESETS

    def __init__(
        self,
        base_url: str,
        service_name: str | None = None,
        max_retries: int = 3,
        timeout: float = 10,
        failure_threshold: int = 5,
        recovery_timeout: float = 60,
        *,
        session: requests.Session | None = None,
        backoff: Backoff | None = None,
        headers: dict[str, str] | None = None,
        transport: Transport | None = None,
        discovery: Discovery | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] = (),
        extra_policies: Sequence[Policy] = (),
        registry: StatusRegistry | None = DEFAULT_REGISTRY,
    ) -> None:
        self.base_url = validate_base_url(base_url)
        check_count("max_retries", max_retries)
        check_number("timeout", timeout, inclusive=False)
        check_count("failure_threshold", failure_threshold)
        check_number("recovery_timeout", recovery_timeout)
        self.service_name = service_name or urlsplit(self.base_url).netloc
        self.max_retries = max_retries
        self.timeout = float(timeout)
        self.session = session
        self.headers = dict(headers or {})
        pipeline = build_pipeline(
            name=self.service_name,
            retry=RetrySpec(
                attempts=max_retries,  # seed 001: "attempt 1/3", the first one included
                backoff=backoff or ExponentialBackoff(initial=1.0, max=30.0, jitter=Jitter.NONE),
            ),
            breaker=CircuitBreakerConfig(
                failure_threshold=failure_threshold, recovery_timeout=float(recovery_timeout)
            ),
            extra=extra_policies,
            clock=clock,
            hooks=(LoggingHook(self.service_name, _log), *hooks),
        )
        self.retry = pipeline.require(Retry)
        self.circuit_breaker = pipeline.require(CircuitBreaker)
        network: Transport = transport or RequestsTransport(session, service=self.service_name)
        network = balanced_http(
            self.base_url,
            network,
            service=self.service_name,
            discovery=discovery,
            clock=clock,
            hooks=hooks,
        )
        self.transport = ResilientTransport(
            network,
            pipeline,
            check=StatusCheck(client_errors=False, service=self.service_name),
            name=self.service_name,
            clock=clock,
        )
        if registry is not None:
            registry.register(self.service_name, self)

    @classmethod
    def for_slow_operations(cls, base_url: str, **kwargs: Any) -> ResilientServiceClient:
        """Vector search, file I/O: 3 attempts, 15 s timeout."""
        return cls(base_url, **{**PRESETS["slow"], **kwargs})

    @classmethod
    def for_fast_operations(cls, base_url: str, **kwargs: Any) -> ResilientServiceClient:
        """Billing, auth: 2 attempts, 5 s timeout."""
        return cls(base_url, **{**PRESETS["fast"], **kwargs})

    @classmethod
    def for_complex_operations(cls, base_url: str, **kwargs: Any) -> ResilientServiceClient:
        """Git and other long jobs: 3 attempts, 30 s timeout, 90 s recovery."""
        return cls(base_url, **{**PRESETS["complex"], **kwargs})

    # ---- requests ------------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send ``method path`` with requests' keyword arguments (``json=``, ``params=``, ...).

        Raises :class:`ServiceUnavailable` when the circuit is open, and a
        ``requests.RequestException`` (that is also a :class:`ServiceError`)
        when every attempt failed.
        """
        method = method.upper()
        headers = {**self.headers, **(kwargs.pop("headers", None) or {})}
        timeout = kwargs.pop("timeout", self.timeout)
        if not isinstance(timeout, int | float):  # requests' (connect, read) pair: as given
            kwargs["timeout"], timeout = timeout, None
        call = Call(
            method,
            self._url(path),
            tuple(headers.items()),
            None,
            timeout,
            kwargs,
            f"{method} {path}",
        )
        rejected: dict[int, Any] = {}
        try:
            reply = self.transport.send(call, check=self._remembering(rejected))
        except ServiceError as error:
            raise as_requests_error(error, response=rejected.get(id(error))) from error
        response = reply.raw if reply.raw is not None else _as_response(call, reply)
        if isinstance(response, requests.Response):
            response.__class__ = ServiceResponse
            response.service_name = self.service_name  # type: ignore[attr-defined]
        _log.info("[%s] ✓ %s %s succeeded", self.service_name, method, path)
        return response

    def _remembering(self, rejected: dict[int, Any]) -> Check:
        """The status check, remembering each response it rejects, by the error it raised:
        the error a failed call ends with carries its response, as ``requests.HTTPError`` does."""
        check = self.transport.check

        def remember(call: Call, reply: Reply) -> None:
            try:
                if check is not None:
                    check(call, reply)
            except ServiceError as error:
                rejected[id(error)] = reply.raw
                raise

        return remember

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://", "discovery:")):
            raise ValueError(f"pass a path relative to {self.base_url}, not a full URL: {path!r}")
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    # ---- status --------------------------------------------------------------------

    def get_status(self) -> dict[str, Any]:
        """Seed 001's status: service, state, failure_count, last_failure, last_state_change."""
        return self.circuit_breaker.get_status()

    def close(self) -> None:
        """Close the session, if one was given."""
        self.transport.close()

    def __enter__(self) -> ResilientServiceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResilientServiceClient({self.base_url!r}, service_name={self.service_name!r})"
