"""Calling one action: check its input, call the service, check its output.

Registered services are called over HTTP through the resilient client of the foundation
(:class:`~servicegrid.clients.EnhancedHTTPClient`, one per service, with its circuit breaker),
by default ``POST {endpoint}/{action}`` with the input as the JSON body and the JSON answer as
the output; an action may declare its own ``method`` and ``path``. Native actions
(``embedding.generate``, ...) go through the typed gRPC clients
(:class:`~servicegrid.integration.native.NativeStepRunner`).

Every call carries an ``Idempotency-Key`` header so that a callee can tell a retried or replayed
request from a new one. Retries are this module's (per step, see
:class:`~servicegrid.integration.workflow_models.StepRetry`): the HTTP client makes one attempt.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from referencing.exceptions import Unresolvable

from servicegrid.clients.enhanced import EnhancedHTTPClient, RetryConfig
from servicegrid.errors import (
    ConflictError,
    DeadlineExceeded,
    InvalidResponse,
    ResourceNotFoundError,
    ServiceError,
    ValidationError,
    field_error,
)
from servicegrid.integration.json_checks import check_json_value, schema_validator
from servicegrid.integration.models import HttpMethod, Service, ServiceAction, ServiceStatus
from servicegrid.integration.native import NativeStepRunner, native_action
from servicegrid.integration.registry import ServiceRegistry
from servicegrid.integration.workflow_models import StepRetry
from servicegrid.resilience.deadline import deadline_scope

__all__ = [
    "ActionCall",
    "ActionInvoker",
    "ActionOutputInvalid",
    "ActionTarget",
    "schema_key",
    "schema_problems",
]

Sleep = Callable[[float], Awaitable[None]]

_ONE_ATTEMPT = StepRetry(max_attempts=1)

RESOLVE_TTL = 1.0
RESOLVE_CACHE_SIZE = 4096


class ActionOutputInvalid(InvalidResponse):
    """The service answered, but not with what its action's output schema promises (502)."""

    default_message = "the action's answer does not match its output schema"


def schema_key(schema: Mapping[str, Any]) -> str:
    """``schema`` as canonical JSON: the key its compiled validator is cached under."""
    return json.dumps(schema, sort_keys=True)


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Any:
    return schema_validator(json.loads(schema_json))


def schema_problems(schema_json: str, value: Any) -> list[tuple[list[str | int], str]]:
    """Each place where ``value`` breaks the schema ``schema_json`` (see :func:`schema_key`).

    A schema that cannot be used (a ``$ref`` to nowhere or one that loops, stored before
    registration checked for them) is one problem at the root, not a crash.
    """
    try:
        validator = _validator(schema_json)
        if validator.is_valid(value):
            return []
        errors = list(validator.iter_errors(value))
    except (Unresolvable, RecursionError, ValueError, OverflowError) as exc:
        return [([], f"the schema cannot be used: {type(exc).__name__}: {exc}")]
    found = []
    for error in sorted(errors, key=lambda e: list(e.absolute_path)):
        found.append((list(error.absolute_path), str(error.message)))
    return found


@dataclass(frozen=True, slots=True)
class ActionTarget:
    """What to call: a registered service's action, or a native one when ``service`` is None."""

    service_name: str
    action_name: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any]
    service: Service | None = None
    action: ServiceAction | None = None
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
    """Resolves actions in the registry and calls them with per-call retry and timeout."""

    def __init__(
        self,
        services: ServiceRegistry,
        *,
        native: NativeStepRunner,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._services = services
        self._native = native
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clients: dict[tuple[str, str], EnhancedHTTPClient] = {}
        self._resolved: dict[tuple[str, str], tuple[int, float, asyncio.Future[ActionTarget]]] = {}

    async def resolve(self, service: str, action: str) -> ActionTarget:
        """The action ``action`` of ``service`` (a registered id or name, or a native one).

        What the registry says is reused for ``RESOLVE_TTL`` seconds, and at once forgotten when
        the registry in this process changes (another worker's change shows within the TTL).
        """
        key = (service, action)
        cached = self._resolved.get(key)
        now = time.monotonic()
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
            return ActionTarget(service, action, native.input_schema, native.output_schema)
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
            fields = [".".join(str(p) for p in [*loc, *path]) for path, _ in problems]
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
        attempt). Every attempt sends the same ``idempotency_key``.

        Each attempt may take ``timeout`` seconds. A transient failure on the last attempt is
        raised as it is; the caller counts the attempts through ``on_attempt``.
        """
        spec = (retry or _ONE_ATTEMPT).retry_spec()
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            if on_attempt is not None:
                on_attempt(attempt)
            try:
                output = await self._attempt(target, input_data, idempotency_key, timeout, headers)
                break
            except (ServiceError, TimeoutError) as error:
                if isinstance(error, TimeoutError):
                    error = DeadlineExceeded(
                        f"no answer within {timeout:g}s", service=target.service_name
                    )
                if attempt >= spec.attempts or not spec.on(error):
                    raise error from None
                await self._sleep(spec.backoff.delay(attempt, self._rng))
        self._check_output(target, output)
        return ActionCall(output, attempt, (time.perf_counter() - started) * 1000)

    async def _attempt(
        self,
        target: ActionTarget,
        input_data: Any,
        idempotency_key: str,
        timeout: float,  # noqa: ASYNC109 - a per-attempt limit, not the call's
        headers: Mapping[str, str] | None,
    ) -> Any:
        async with asyncio.timeout(timeout):
            with deadline_scope(time.monotonic() + timeout):
                if target.service is None:
                    return await self._native.run(
                        target.service_name, target.action_name, input_data, timeout=timeout
                    )
                return await self._http(target, input_data, idempotency_key, headers)

    async def _http(
        self,
        target: ActionTarget,
        input_data: Any,
        idempotency_key: str,
        headers: Mapping[str, str] | None,
    ) -> Any:
        service, action = target.service, target.action
        assert service is not None
        assert action is not None
        if service.status is not ServiceStatus.ACTIVE:
            # the state of the registry, not of the service: 409, and no retry (it cannot change)
            raise ConflictError(
                f"service {service.name!r} is {service.status.value}; only ACTIVE ones are called",
                service=service.name,
                details={"resource_type": "service", "resource_id": service.id},
            )
        client = await self._client(service)
        path = action.path or f"/{action.name}"
        sent = {"Idempotency-Key": idempotency_key, **(headers or {})}
        if action.method in (HttpMethod.GET, HttpMethod.DELETE):
            params = dict(input_data or {})
            response = await client.request(action.method.value, path, params=params, headers=sent)
        else:
            response = await client.request(
                action.method.value, path, json=input_data, headers=sent
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ActionOutputInvalid(
                f"{service.name}.{action.name} answered {response.status_code} "
                f"with a body that is not JSON",
                service=service.name,
            ) from None

    async def _client(self, service: Service) -> EnhancedHTTPClient:
        key = (service.name, service.endpoint)
        client = self._clients.get(key)
        if client is None:
            client = EnhancedHTTPClient(
                service.name,
                service.endpoint.rstrip("/"),
                retry_config=RetryConfig(max_retries=1),
                registry=None,
            )
            await client.start()
            self._clients[key] = client
        return client

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
        """Close every HTTP client and the native clients."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
        await self._native.aclose()
