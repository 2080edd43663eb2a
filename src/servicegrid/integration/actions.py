"""The action invoker: check an action's input, call it, check its output.

Registered services are called over HTTP through the transport seam: by default
``POST {endpoint}/{action}`` with the input as the JSON body and the JSON answer as the output; an
action may declare its own ``method`` and ``path``. Native actions (``embedding.generate``, ...)
go through the typed gRPC clients (:class:`~servicegrid.integration.native.NativeStepRunner`).

Each call is one resilience pipeline: the step's retry (see
:class:`~servicegrid.integration.workflow_models.StepRetry`), the service's circuit breaker, and
attempts of the step's timeout each. Every attempt carries the same ``Idempotency-Key`` header, so
a callee can tell a retried or replayed request from a new one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.balancer import balanced_http
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import (
    ConflictError,
    DeadlineExceeded,
    DiscoveryError,
    InvalidResponse,
    ResourceNotFoundError,
    UnknownServiceError,
    ValidationError,
    field_error,
)
from servicegrid.integration.json_checks import (
    check_json_value,
    dotted,
    schema_key,
    schema_problems,
)
from servicegrid.integration.models import HttpMethod, Service, ServiceAction, ServiceStatus
from servicegrid.integration.native import NativeAction, NativeStepRunner, native_action
from servicegrid.integration.registry import ServiceRegistry
from servicegrid.integration.workflow_models import StepRetry
from servicegrid.resilience.breaker import CircuitBreaker, CircuitBreakerConfig
from servicegrid.resilience.deadline import deadline_scope
from servicegrid.resilience.pipeline import Pipeline
from servicegrid.resilience.retry import Retry
from servicegrid.transports.http import StatusCheck
from servicegrid.transports.http1 import Http1Transport
from servicegrid.transports.httpx_compat import RequestEncoder
from servicegrid.transports.resilient import ResilientTransport

__all__ = [
    "ActionCall",
    "ActionInvoker",
    "ActionOutputInvalid",
    "ActionTarget",
]

T = TypeVar("T")

_ONE_ATTEMPT = StepRetry(max_attempts=1)

RESOLVE_TTL = 1.0
RESOLVE_CACHE_SIZE = 4096


class ActionOutputInvalid(InvalidResponse):
    """The service answered, but not with what its action's output schema promises (502)."""

    default_message = "the action's answer does not match its output schema"


@dataclass(frozen=True, slots=True)
class ActionTarget:
    """What to call: a registered service's action (``service`` and ``action``), or a native one
    (``native``)."""

    service_name: str
    action_name: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any]
    service: Service | None = None
    action: ServiceAction | None = None
    native: NativeAction | None = None
    input_key: str = field(init=False)
    output_key: str = field(init=False)

    def __post_init__(self) -> None:
        # made once per resolved target, so a call only hashes a string it already hashed
        object.__setattr__(self, "input_key", schema_key(self.input_schema))
        object.__setattr__(self, "output_key", schema_key(self.output_schema))


@dataclass(frozen=True, slots=True)
class ActionCall:
    """The outcome of a successful call: the checked output and how many attempts it took."""

    output: Any
    attempts: int
    duration_ms: float


class ActionInvoker:
    """Resolves actions in the registry and calls them, each call with its own retry and deadline.

    A call runs through the resilience pipeline of the transport seam: the step's
    :class:`~servicegrid.resilience.Retry` outermost, then the called service's circuit breaker
    (one per service, shared by every step that calls it), then one attempt, whose timeout is the
    step's. ``clock`` and ``rng`` drive the backoff between attempts.
    """

    def __init__(
        self,
        services: ServiceRegistry,
        *,
        native: NativeStepRunner,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        breaker: CircuitBreakerConfig | None = None,
        discovery: Discovery | None = None,
    ) -> None:
        self._services = services
        self._discovery = discovery
        self._native = native
        self._clock = clock
        self._rng = rng or random.Random()
        self._breaker = breaker or CircuitBreakerConfig()
        self._links: dict[tuple[str, str], _ServiceLink] = {}
        self._retries: dict[tuple[str, int, float, float], Retry] = {}
        self._resolved: dict[tuple[str, str], tuple[int, float, asyncio.Future[ActionTarget]]] = {}

    async def resolve(self, service: str, action: str) -> ActionTarget:
        """The action ``action`` of ``service`` (a registered id or name, or a native one).

        What the registry says is reused for ``RESOLVE_TTL`` seconds, and at once forgotten when
        the registry in this process changes (another worker's change shows within the TTL).
        """
        key = (service, action)
        cached = self._resolved.get(key)
        now = self._clock.now()
        if cached is not None and cached[0] == self._services.version and cached[1] > now:
            return await cached[2]
        # one lookup at a time per action: concurrent steps share it
        lookup = asyncio.ensure_future(self._resolve(service, action))
        if len(self._resolved) >= RESOLVE_CACHE_SIZE:
            self._resolved.clear()
        self._resolved[key] = (self._services.version, now + RESOLVE_TTL, lookup)
        try:
            return await asyncio.shield(lookup)
        except BaseException:
            if self._resolved.get(key, (0, 0.0, None))[2] is lookup:
                del self._resolved[key]
            raise

    async def _resolve(self, service: str, action: str) -> ActionTarget:
        native = native_action(service, action)
        if native is not None:
            return ActionTarget(
                service, action, native.input_schema, native.output_schema, native=native
            )
        found = await self._services.get(service)
        for candidate in found.actions:
            if candidate.name == action:
                return ActionTarget(
                    found.name,
                    action,
                    candidate.input_schema,
                    candidate.output_schema,
                    service=found,
                    action=candidate,
                )
        raise ResourceNotFoundError(resource_type="action", resource_id=f"{found.name}.{action}")

    def check_input(self, target: ActionTarget, input_data: Any, *, loc: list[str | int]) -> None:
        """Raise :class:`ValidationError` naming each field of ``input_data`` that is wrong;
        ``loc`` is where ``input_data`` sits (``["input_data"]`` in a request body)."""
        problems = schema_problems(target.input_key, input_data)
        if problems:
            fields = [dotted([*loc, *path]) for path, _ in problems]
            errors = [
                field_error(field, message, "schema")
                for field, (_, message) in zip(fields, problems, strict=True)
            ]
            where = "; ".join(
                f"{field}: {message}" for field, (_, message) in zip(fields, problems, strict=True)
            )
            raise ValidationError(
                f"input of {target.service_name}.{target.action_name} is invalid: {where}",
                validation_errors=errors,
            )

    async def call(
        self,
        target: ActionTarget,
        input_data: Any,
        *,
        idempotency_key: str,
        retry: StepRetry | None,
        timeout: float,  # noqa: ASYNC109 - a per-attempt limit, not the call's
        headers: Mapping[str, str] | None = None,
        on_attempt: Callable[[int], None] | None = None,
    ) -> ActionCall:
        """Call ``target`` until it succeeds, fails for good, or ``retry`` runs out (None: one
        attempt). Every attempt sends the same ``idempotency_key`` and may take ``timeout``
        seconds; ``on_attempt`` hears the number of each attempt as it starts.
        """
        started = self._clock.now()
        attempts = _CountedAttempts(on_attempt)
        policy = self._retry(target.service_name, retry)
        if target.native is not None:
            pipeline = Pipeline(policy, attempts, name=target.service_name)
            output = await pipeline.acall(self._native_attempt, target, input_data, timeout)
        else:
            assert target.service is not None
            link = await self._link(target.service)
            output = await link.call(
                target, input_data, idempotency_key, headers, timeout, policy, attempts
            )
        self._check_output(target, output)
        return ActionCall(output, attempts.count, (self._clock.now() - started) * 1000)

    def _retry(self, service: str, retry: StepRetry | None) -> Retry:
        spec = retry or _ONE_ATTEMPT
        key = (service, spec.max_attempts, spec.initial_delay_seconds, spec.max_delay_seconds)
        policy = self._retries.get(key)
        if policy is None:
            if len(self._retries) >= RESOLVE_CACHE_SIZE:
                self._retries.clear()
            policy = spec.retry_spec().build(name=service, clock=self._clock, rng=self._rng)
            self._retries[key] = policy
        return policy

    async def _native_attempt(
        self,
        target: ActionTarget,
        input_data: Any,
        timeout: float,  # noqa: ASYNC109 - a per-attempt limit, not the call's
    ) -> Any:
        try:
            async with asyncio.timeout(timeout):
                with deadline_scope(self._clock.now() + timeout):
                    assert target.native is not None
                    return await self._native.run_action(target.native, input_data, timeout=timeout)
        except TimeoutError:
            raise DeadlineExceeded(
                f"no answer within {timeout:g}s", service=target.service_name
            ) from None

    async def _link(self, service: Service) -> _ServiceLink:
        if service.status is not ServiceStatus.ACTIVE:
            # the state of the registry, not of the service: 409, and no retry (it cannot change)
            raise ConflictError(
                f"service {service.name!r} is {service.status.value}; only ACTIVE ones are called",
                service=service.name,
                details={"resource_type": "service", "resource_id": service.id},
            )
        key = (service.name, service.endpoint)
        link = self._links.get(key)
        if link is None:
            base_url = await self._base_url(service.endpoint)
            link = self._links.get(key)  # another step may have made it meanwhile
            if link is None:
                link = _ServiceLink(service, base_url, self._breaker, self._clock, self._discovery)
                self._links[key] = link
        return link

    async def _base_url(self, endpoint: str) -> str:
        """``endpoint``, or ``discovery:///<host><path>`` when its host is a name that discovery
        knows (``text-extraction-service``): its instances' addresses and ports replace the
        URL's, and the path is kept. Any other host is left to DNS."""
        parts = urlsplit(endpoint.rstrip("/"))
        host = parts.hostname or ""
        if self._discovery is None or not _names_a_service(host):
            return endpoint
        try:
            await self._discovery.resolve(host, "http")
        except (UnknownServiceError, DiscoveryError):
            return endpoint
        return f"discovery:///{host}{parts.path}"

    def _check_output(self, target: ActionTarget, output: Any) -> None:
        try:
            check_json_value(output)
        except ValueError as exc:
            raise ActionOutputInvalid(
                f"{target.service_name}.{target.action_name} answered with an output that "
                f"cannot be stored: {exc}",
                service=target.service_name,
            ) from None
        problems = schema_problems(target.output_key, output)
        if problems:
            where = "; ".join(
                f"{'.'.join(str(p) for p in path) or '(root)'}: {message}"
                for path, message in problems
            )
            raise ActionOutputInvalid(
                f"{target.service_name}.{target.action_name} answered with an output that "
                f"does not match its schema: {where}",
                service=target.service_name,
                details={"output_errors": [{"loc": p, "msg": m} for p, m in problems]},
            )

    async def aclose(self) -> None:
        """Close every connection to the services and the native clients."""
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.http.aclose()
        await self._native.aclose()


def _names_a_service(host: str) -> bool:
    """Whether ``host`` is a bare service name, not an address or a domain name."""
    if not host or "." in host or ":" in host or host == "localhost":
        return False
    return not host.isdigit()


class _CountedAttempts:
    """The innermost policy of a call: counts its attempts and reports each as it starts."""

    __slots__ = ("_report", "count")

    def __init__(self, report: Callable[[int], None] | None) -> None:
        self.count = 0
        self._report = report

    def _next(self) -> None:
        self.count += 1
        if self._report is not None:
            self._report(self.count)

    def invoke(self, inner: Callable[[], T]) -> T:
        self._next()
        return inner()

    async def ainvoke(self, inner: Callable[[], Awaitable[T]]) -> T:
        self._next()
        return await inner()


class _ServiceLink:
    """The way to one registered service: its connections, its circuit breaker, its requests."""

    def __init__(
        self,
        service: Service,
        base_url: str,
        breaker: CircuitBreakerConfig,
        clock: Clock,
        discovery: Discovery | None,
    ) -> None:
        self.name = service.name
        self.encoder = RequestEncoder(base_url.rstrip("/"))
        network = Http1Transport(default_headers=self.encoder.default_headers, service=self.name)
        self.http = balanced_http(
            base_url, network, service=self.name, discovery=discovery, clock=clock
        )
        self.breaker = CircuitBreaker(name=self.name, config=breaker, clock=clock)
        self.check = StatusCheck(client_errors=True, service=self.name)
        self.clock = clock

    async def call(
        self,
        target: ActionTarget,
        input_data: Any,
        idempotency_key: str,
        headers: Mapping[str, str] | None,
        timeout: float,  # noqa: ASYNC109 - a per-attempt limit, not the call's
        retry: Retry,
        attempts: _CountedAttempts,
    ) -> Any:
        """Send the action's request through retry → breaker → one attempt; its JSON answer."""
        action = target.action
        assert action is not None
        sent = {"Idempotency-Key": idempotency_key, **(headers or {})}
        path = action.path or f"/{action.name}"
        body: dict[str, Any] = {"headers": sent, "timeout": timeout}
        if action.method in (HttpMethod.GET, HttpMethod.DELETE):
            body["params"] = dict(input_data or {})
        else:
            body["json"] = input_data
        call = self.encoder.encode(action.method.value, path, body)
        pipeline = Pipeline(retry, self.breaker, attempts, name=self.name)
        transport = ResilientTransport(
            self.http, pipeline, check=self.check, name=self.name, clock=self.clock
        )
        reply = await transport.asend(call)
        if not reply.content:
            return None
        try:
            return reply.json()
        except ValueError:
            raise ActionOutputInvalid(
                f"{self.name}.{action.name} answered {reply.status} with a body that is not JSON",
                service=self.name,
            ) from None
