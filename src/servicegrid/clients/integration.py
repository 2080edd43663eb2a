"""``ServiceIntegrationClient``: seed 003's client for the integration service's REST API.

.. code-block:: python

    async with ServiceIntegrationClient(base_url="http://localhost:8005/api") as client:
        service = await client.register_service(name="text-extraction", endpoint=url, actions=[...])
        workflow = await client.create_workflow(name="document-sentiment", steps=[...])
        result = await client.execute_workflow(workflow_id=workflow["id"], input_data={...})
        print(result["sentiment"])            # a missing key falls back to the output

        workflows = client.get_workflows()     # read methods work without await ...
        for item in workflows["items"]: ...
        workflow = await client.get_workflow(workflow_id=workflow["id"])   # ... and with it

Write methods (create, update, delete, execute, cancel, resume) return a
coroutine, which checks and sends nothing until awaited, as an ``async def``
does. Read methods (``get_*``) return a :class:`DeferredRead`, which
the seed uses both ways:

* ``await client.get_workflow(...)`` sends the request on the event loop and
  returns a plain ``dict`` (a :class:`WorkflowExecution` for an execution).
* Used directly as a mapping (``read["items"]``, ``.get``, ``in``, iteration,
  ``len``, ``==`` against a dict), it sends the request *synchronously*, once,
  on the first such use, and then behaves as that dict. ``read.result()`` does
  the same and returns the dict itself. That request blocks the calling thread
  (an event loop too, if called from a coroutine), so code that runs on a loop
  should ``await``; it must never be used against a server served by the same loop.

Both paths go through the same policies: one circuit breaker for the whole
client, and a retry per kind of operation (:data:`INTEGRATION_RETRY_POLICIES`):

=========  =======  ==========  =========
operation  retries  base delay  max delay
=========  =======  ==========  =========
create     3        0.5 s       4 s
update     3        0.5 s       4 s
delete     2        1 s         4 s
read       2        0.5 s       2 s
=========  =======  ==========  =========

``retries`` come after the first attempt, so a create makes at most 4
attempts. What is retried is what the error table calls retryable
(:func:`servicegrid.errors.is_retryable`: connection errors, timeouts,
502/503/504, 429 after its ``Retry-After``, 500), except that a create, the one
kind of operation that is not idempotent (:attr:`OperationType.idempotent`), is
not sent again after the service failed while processing it (a 500): it may
have taken effect. When the retries run out the call raises
:class:`MaxRetriesExceededError` (``attempts``, ``last_error``). Executing a
workflow or a service action counts as a create. Every POST sends one
``Idempotency-Key`` per call, the same on every retry, so a retried execute
cannot start two executions (the service honours the key there). While the
breaker is open, calls fail at once with ``ServiceUnavailableError``
(``service_name == "service-integration"``) without reaching the service.
Backoff and polling sleep through the injected ``clock``.

Error answers become typed errors: 422 → :class:`ValidationError` whose
``validation_errors`` are ``[{"field": "actions.0.name", "message": ...}]``,
404 → :class:`ResourceNotFoundError` (``resource_type``, ``resource_id``),
409 → :class:`ConflictError`, 503 → :class:`ServiceUnavailableError`.

:class:`ServiceIntegrationClientSync` has the same methods, all synchronous.
"""

from __future__ import annotations

import abc
import enum
import random
import threading
import uuid
from collections.abc import Callable, Coroutine, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Generic, TypeAlias, TypeVar
from urllib.parse import quote, urlencode

import httpx

from servicegrid import catalogue
from servicegrid._validate import check_count, check_number
from servicegrid.clients.resilient import validate_base_url
from servicegrid.clients.state import ClientState
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.balancer import BalancedTransport, balanced_http
from servicegrid.discovery.resolver import Discovery
from servicegrid.errors import (
    ClientStateError,
    ErrorCategory,
    InvalidResponse,
    ResourceNotFoundError,
    ServiceError,
    ValidationError,
    is_retryable,
)
from servicegrid.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    Jitter,
    RetrySpec,
    build_pipeline,
)
from servicegrid.resilience.events import Hook
from servicegrid.transports.base import Call, Reply
from servicegrid.transports.http import PhaseTimeouts, error_for_reply
from servicegrid.transports.httpx_compat import json_body
from servicegrid.transports.httpx_transport import HttpxTransport
from servicegrid.transports.resilient import Check, ResilientTransport

__all__ = [
    "DEFAULT_BASE_URL",
    "INTEGRATION_RETRY_POLICIES",
    "TERMINAL_EXECUTION_STATUSES",
    "DeferredRead",
    "OperationRetryPolicy",
    "OperationType",
    "ServiceIntegrationClient",
    "ServiceIntegrationClientSync",
    "WorkflowExecution",
]

DEFAULT_BASE_URL: Final = catalogue.lookup("integration").default_address
SERVICE_NAME: Final = "service-integration"  # seed 003's name for it in errors (an alias)
TERMINAL_EXECUTION_STATUSES: Final = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
# A Retry-After longer than this ends the call (MaxRetriesExceededError) instead of sleeping.
_MAX_RETRY_AFTER = 30.0

T = TypeVar("T")
R = TypeVar("R", bound=dict[str, Any])


class OperationType(enum.Enum):
    """The kinds of operation seed 003 gives their own retry policy."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    READ = "read"

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice has the effect of sending it once: all but CREATE.

        (Executing a workflow is a create that the service deduplicates by its
        ``Idempotency-Key``; registering a service or a workflow is not.)
        """
        return self is not OperationType.CREATE

    def may_resend_after(self, error: BaseException) -> bool:
        """Whether this operation may be sent again after ``error``: when the error table
        calls it retryable, and, unless the operation is idempotent, the service did not
        fail while processing it (category INTERNAL, a 500): it may have taken effect."""
        if not is_retryable(error):
            return False
        return self.idempotent or getattr(error, "category", None) is not ErrorCategory.INTERNAL


@dataclass(frozen=True, slots=True)
class OperationRetryPolicy:
    """``retries`` after the first attempt, with exponential backoff and jitter.

    The wait before retry n is b/2 + uniform(0, b/2) seconds ("Equal Jitter"),
    where b = min(max_delay, base_delay * 2**(n-1)).
    """

    retries: int
    base_delay: float
    max_delay: float
    jitter: Jitter = Jitter.EQUAL

    def __post_init__(self) -> None:
        check_count("retries", self.retries, minimum=0)
        check_number("base_delay", self.base_delay)
        check_number("max_delay", self.max_delay)
        if self.max_delay < self.base_delay:
            raise ValueError(f"max_delay ({self.max_delay}) must be >= base_delay")

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def retry_spec(self, op: OperationType) -> RetrySpec:
        """This policy for operations of kind ``op``, raising MaxRetriesExceededError when spent."""
        return RetrySpec.from_retries(
            self.retries,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            jitter=self.jitter,
            on=op.may_resend_after,
            max_retry_after=_MAX_RETRY_AFTER,
        )


INTEGRATION_RETRY_POLICIES: Final[Mapping[OperationType, OperationRetryPolicy]] = MappingProxyType(
    {
        OperationType.CREATE: OperationRetryPolicy(retries=3, base_delay=0.5, max_delay=4.0),
        OperationType.UPDATE: OperationRetryPolicy(retries=3, base_delay=0.5, max_delay=4.0),
        OperationType.DELETE: OperationRetryPolicy(retries=2, base_delay=1.0, max_delay=4.0),
        OperationType.READ: OperationRetryPolicy(retries=2, base_delay=0.5, max_delay=2.0),
    }
)
"""Seed 003's retry policy per operation type."""

# ---- results ----------------------------------------------------------------------------


class WorkflowExecution(dict[str, Any]):
    """An execution as the service returns it; a key it lacks is looked up in its ``output``.

    So ``result["sentiment"]`` and ``result.get("sentiment")`` read the output of a
    COMPLETED execution; ``in``, iteration and ``len`` see the execution's own keys.
    A key in neither raises KeyError naming the execution's status.
    """

    def __missing__(self, key: str) -> Any:
        output = dict.get(self, "output")
        if isinstance(output, dict) and key in output:
            return output[key]
        status = dict.get(self, "status", "unknown")
        why = f"status {status}"
        if error := dict.get(self, "error"):
            why += f", error: {error}"
        elif status not in TERMINAL_EXECUTION_STATUSES:
            why += ", not finished: no output yet"
        raise KeyError(
            f"{key!r} is neither a field of execution {dict.get(self, 'id')!r} "
            f"nor a key of its output ({why})"
        )

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


class DeferredRead(Mapping[str, Any], Generic[R]):
    """One read request: ``await`` it, or use it as the mapping it fetches (once, blocking).

    The first of ``await``, :meth:`result` or a mapping operation sends the
    request; the answer is kept and every later use returns it.
    """

    __slots__ = ("_afetch", "_describe", "_fetch", "_lock", "_value")

    def __init__(
        self,
        fetch: Callable[[], R],
        afetch: Callable[[], Generator[Any, None, R]],
        describe: str,
    ) -> None:
        self._fetch = fetch
        self._afetch = afetch
        self._describe = describe
        self._lock = threading.Lock()
        self._value: R | None = None

    @property
    def done(self) -> bool:
        """Whether the request has been answered."""
        return self._value is not None

    def result(self) -> R:
        """The answer, sending the request synchronously if it has not been sent."""
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._fetch()
        return self._value

    def __await__(self) -> Generator[Any, None, R]:
        if self._value is not None:
            return self._value
        value = yield from self._afetch()
        if self._value is None:
            self._value = value
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self.result()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.result())

    def __len__(self) -> int:
        return len(self.result())

    def __contains__(self, key: object) -> bool:
        return key in self.result()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeferredRead):
            other = other.result()
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.result() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = repr(self._value) if self._value is not None else "not sent"
        return f"DeferredRead({self._describe}: {state})"


# ---- requests (no I/O) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    """One REST call: what to send, how to retry it, and what its 404 would be about."""

    op: OperationType
    method: str
    path: str
    params: dict[str, str | int] | None = None
    body: dict[str, Any] | None = None
    resource: tuple[str, str] | None = None
    idempotency_key: bool = False
    # error statuses whose JSON object body is the answer (a health report saying "unhealthy")
    accept: frozenset[int] = field(default_factory=frozenset)
    # seconds to wait on the clock before sending (the interval between two polls)
    pause: float = 0.0

    def describe(self) -> str:
        return f"{self.method} {self.path}"


_Plan: TypeAlias = Generator[_Call, dict[str, Any], T]
"""The calls of one write, in order: each ``yield`` sends a call and receives its answer.

A plan is a generator, so nothing (not even its argument checks) runs before a client
drives it: an async write raises only when awaited, as an ``async def`` does.
"""


@dataclass(frozen=True, slots=True)
class _Done(Generic[T]):
    value: T


def _advance(plan: _Plan[T], answer: dict[str, Any] | None) -> _Call | _Done[T]:
    """Resume ``plan`` with its last call's answer (None to start it): its next call, or its end."""
    try:
        return next(plan) if answer is None else plan.send(answer)
    except StopIteration as stop:
        return _Done(stop.value)


def _segment(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _given(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _page(status: str | None, page: int, per_page: int) -> dict[str, str | int]:
    params: dict[str, str | int] = {"page": page, "per_page": per_page}
    if status is not None:
        params["status"] = status.value if isinstance(status, enum.Enum) else str(status)
    return params


def _run_body(
    input_data: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {"input_data": dict(input_data or {}), "context": dict(context or {})}


def _as_list(items: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [dict(item) for item in items]


def _as_dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def _wf(workflow_id: str) -> tuple[str, tuple[str, str]]:
    return f"/workflows/{_segment('workflow_id', workflow_id)}", ("workflow", workflow_id)


def _svc(service_id: str) -> tuple[str, tuple[str, str]]:
    return f"/services/{_segment('service_id', service_id)}", ("service", service_id)


def _ex(execution_id: str) -> tuple[str, tuple[str, str]]:
    return f"/executions/{_segment('execution_id', execution_id)}", ("execution", execution_id)


_C, _U, _D, _RD = (
    OperationType.CREATE,
    OperationType.UPDATE,
    OperationType.DELETE,
    OperationType.READ,
)

# a health endpoint answers 503 with a report saying "unhealthy": that report is the answer
_REPORTS = frozenset({503})
_HEALTH = _Call(_RD, "GET", "/health", accept=_REPORTS)


def _get(path_and_resource: tuple[str, tuple[str, str]]) -> _Call:
    path, resource = path_and_resource
    return _Call(_RD, "GET", path, resource=resource)


def _list(collection: str, status: str | None, page: int, per_page: int) -> _Call:
    return _Call(_RD, "GET", collection, _page(status, page, per_page))


def _workflow_executions(workflow_id: str, status: str | None, page: int, per_page: int) -> _Call:
    path, resource = _wf(workflow_id)
    return _Call(_RD, "GET", f"{path}/executions", _page(status, page, per_page), resource=resource)


def _service_health(service_id: str) -> _Call:
    path, resource = _svc(service_id)
    return _Call(_RD, "GET", f"{path}/health", resource=resource, accept=_REPORTS)


def _workflow_body(
    name: str | None,
    description: str | None,
    steps: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    status: str | None,
) -> dict[str, Any]:
    return _given(
        name=name,
        description=description,
        steps=_as_list(steps),
        metadata=_as_dict(metadata),
        status=status,
    )


def _create_workflow(
    name: str,
    description: str,
    steps: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    status: str | None,
) -> _Plan[dict[str, Any]]:
    body = _workflow_body(name, description, steps, metadata, status)
    return (yield _Call(_C, "POST", "/workflows", body=body, idempotency_key=True))


def _update_workflow(
    workflow_id: str,
    name: str | None,
    description: str | None,
    steps: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    status: str | None,
) -> _Plan[dict[str, Any]]:
    path, resource = _wf(workflow_id)
    body = _workflow_body(name, description, steps, metadata, status)
    return (yield _Call(_U, "PATCH", path, body=body, resource=resource))


def _delete_workflow(workflow_id: str) -> _Plan[dict[str, Any]]:
    path, resource = _wf(workflow_id)
    return (yield _Call(_D, "DELETE", path, resource=resource))


def _execute_workflow(
    workflow_id: str,
    input_data: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    *,
    wait: bool,
    poll_interval: float,
    timeout: float,
    clock: Clock,
    service: str,
) -> _Plan[WorkflowExecution]:
    """Start an execution; with ``wait``, poll it until it ends or ``timeout`` seconds pass."""
    check_number("poll_interval", poll_interval, inclusive=False)
    deadline = clock.now() + timeout
    path, resource = _wf(workflow_id)
    body = _run_body(input_data, context)
    start = _Call(_C, "POST", f"{path}/execute", body=body, resource=resource, idempotency_key=True)
    execution = WorkflowExecution((yield start))
    if not wait:
        return execution
    poll = _get(_ex(_execution_id(execution, service)))
    while not _is_terminal(execution):
        left = deadline - clock.now()
        if left <= 0:
            break
        execution = WorkflowExecution((yield replace(poll, pause=min(poll_interval, left))))
    return execution


def _execution_action(execution_id: str, action: str) -> _Plan[WorkflowExecution]:
    path, resource = _ex(execution_id)
    call = _Call(_U, "POST", f"{path}/{action}", resource=resource, idempotency_key=True)
    return WorkflowExecution((yield call))


def _service_body(
    name: str | None,
    description: str | None,
    endpoint: str | None,
    status: str | None,
    actions: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return _given(
        name=name,
        description=description,
        endpoint=endpoint,
        status=status,
        actions=_as_list(actions),
        metadata=_as_dict(metadata),
    )


def _register_service(
    name: str,
    description: str,
    endpoint: str | None,
    actions: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    status: str | None,
) -> _Plan[dict[str, Any]]:
    body = _service_body(name, description, endpoint, status, actions, metadata)
    return (yield _Call(_C, "POST", "/services", body=body, idempotency_key=True))


def _update_service(
    service_id: str,
    name: str | None,
    description: str | None,
    endpoint: str | None,
    status: str | None,
    actions: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
) -> _Plan[dict[str, Any]]:
    path, resource = _svc(service_id)
    body = _service_body(name, description, endpoint, status, actions, metadata)
    return (yield _Call(_U, "PATCH", path, body=body, resource=resource))


def _deregister_service(service_id: str) -> _Plan[dict[str, Any]]:
    path, resource = _svc(service_id)
    return (yield _Call(_D, "DELETE", path, resource=resource))


def _execute_service_action(
    service_id: str,
    action: str,
    input_data: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
) -> _Plan[dict[str, Any]]:
    path, resource = _svc(service_id)
    call = _Call(
        _C,
        "POST",
        f"{path}/actions/{_segment('action', action)}/execute",
        body=_run_body(input_data, context),
        resource=resource,
        idempotency_key=True,
    )
    return (yield call)


# ---- answers (no I/O) -------------------------------------------------------------------


def _json_object(reply: Reply) -> dict[str, Any] | None:
    try:
        body = reply.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _validation_errors(body: dict[str, Any] | None) -> list[Any]:
    """The problems listed in our ``validation_errors`` or FastAPI's ``detail`` list, as sent;
    :class:`ValidationError` turns them into its one ``{"field", "message", "type"}`` shape."""
    if body is None:
        return []
    raw = body.get("validation_errors")
    if not isinstance(raw, list) or not raw:
        raw = body.get("detail")
    return list(raw) if isinstance(raw, list) else []


def _server_message(body: dict[str, Any] | None) -> str | None:
    if body is None:
        return None
    for key in ("message", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _error_for(request: Call, reply: Reply, call: _Call, service: str) -> ServiceError:
    """The typed error for an error answer, with the fields seed 003's callers read."""
    status = reply.status
    generic = error_for_reply(request, reply, service=service)
    body = _json_object(reply)
    details: dict[str, Any] = dict(generic.details)
    if body is not None:
        details["body"] = body
        if isinstance(body.get("details"), dict):
            details = {**body["details"], **details}
    where = f"{call.describe()} answered HTTP {status}"
    kw: dict[str, Any] = {"service": service, "details": details}
    if generic.retry_after is not None:
        kw["retry_after"] = generic.retry_after
    if isinstance(generic, ValidationError):
        problems = ValidationError(validation_errors=_validation_errors(body)).validation_errors
        summary = _server_message(body) or "; ".join(
            f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems[:5]
        )
        return ValidationError(
            f"{where}: {summary or 'validation failed'}", validation_errors=problems, **kw
        )
    if isinstance(generic, ResourceNotFoundError):
        resource_type: Any
        resource_id: Any
        resource_type, resource_id = call.resource or (None, None)
        if body is not None:
            resource_type = body.get("resource_type") or resource_type
            resource_id = body.get("resource_id") or resource_id
        message = _server_message(body) or f"{resource_type or 'resource'} not found"
        return ResourceNotFoundError(
            f"{where}: {message}",
            resource_type=None if resource_type is None else str(resource_type),
            resource_id=None if resource_id is None else str(resource_id),
            **kw,
        )
    said = _server_message(body)
    return type(generic)(f"{where}: {said}", **kw) if said else generic


def _answer(request: Call, reply: Reply, call: _Call, service: str) -> dict[str, Any]:
    """The JSON object ``reply`` carries; the typed error for an error status or a bad body."""
    status = reply.status
    if status >= 400:
        body = _json_object(reply) if status in call.accept else None
        if body is None:
            raise _error_for(request, reply, call, service)
        return body
    if not reply.content:
        return {}
    body = _json_object(reply)
    if body is None:
        kind = reply.header("content-type") or "no content type"
        raise InvalidResponse(
            f"{call.describe()} answered HTTP {status} with a body that is not a JSON object "
            f"({kind}; starts {reply.text[:60]!r})",
            service=service,
        )
    return body


def _execution_id(execution: WorkflowExecution, service: str) -> str:
    execution_id = dict.get(execution, "id")
    if not isinstance(execution_id, str) or not execution_id:
        raise InvalidResponse(
            f"the execution answer has no id: {dict(execution)!r}", service=service
        )
    return execution_id


def _is_terminal(execution: WorkflowExecution) -> bool:
    return dict.get(execution, "status") in TERMINAL_EXECUTION_STATUSES


# ---- the shared core --------------------------------------------------------------------


class _IntegrationCore:
    """Configuration, policies and both send paths, shared by both clients.

    Every call goes through the transport seam: one
    :class:`~servicegrid.transports.resilient.ResilientTransport` per kind of
    operation (its own retry, the shared breaker) over one
    :class:`~servicegrid.transports.httpx_transport.HttpxTransport`, whose
    ``transport`` (threads) and ``async_transport`` (event loops) replace the network.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30,
        *,
        service_name: str = SERVICE_NAME,
        retry_policies: Mapping[OperationType, OperationRetryPolicy] | None = None,
        circuit_breaker_config: CircuitBreakerConfig | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        hooks: Sequence[Hook] = (),
        discovery: Discovery | None = None,
    ) -> None:
        self.base_url = validate_base_url(base_url)
        self.timeout = check_number("timeout", timeout, inclusive=False)
        self.service_name = service_name
        self.headers = dict(headers or {})
        self.retry_policies: Mapping[OperationType, OperationRetryPolicy] = MappingProxyType(
            {**INTEGRATION_RETRY_POLICIES, **(retry_policies or {})}
        )
        self._clock = clock
        self.circuit_breaker = CircuitBreaker(
            name=service_name,
            config=circuit_breaker_config or CircuitBreakerConfig(),
            clock=clock,
            hooks=hooks,
        )
        every_phase = PhaseTimeouts(self.timeout, self.timeout, self.timeout, self.timeout)
        self.http: HttpxTransport | BalancedTransport = HttpxTransport(
            timeouts=every_phase,
            transport=transport,
            async_transport=async_transport,
            service=service_name,
        )
        self.http = balanced_http(
            self.base_url,
            self.http,
            service=service_name,
            discovery=discovery,
            clock=clock,
            hooks=hooks,
        )
        rng = rng or random.Random()
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

    def _request(self, call: _Call) -> Call:
        """The HTTP call for ``call``: one ``Idempotency-Key`` for all its attempts."""
        headers = dict(self.headers)
        if call.idempotency_key:
            headers[IDEMPOTENCY_HEADER] = uuid.uuid4().hex
        url = f"{self.base_url}{call.path}"
        if call.params:
            url = f"{url}?{urlencode(call.params)}"
        body = None
        if call.body is not None:
            headers["content-type"] = "application/json"
            body = json_body(call.body)
        return Call(
            call.method, url, tuple(headers.items()), body, self.timeout, name=call.describe()
        )

    def _send(self, call: _Call) -> dict[str, Any]:
        """Send ``call`` in the calling thread through its operation's retry and the breaker."""
        self._check_open()
        if call.pause:
            self._clock.sleep(call.pause)
        answer: list[dict[str, Any]] = []
        self._transports[call.op].send(self._request(call), check=self._answering(call, answer))
        return answer[0]

    async def _asend(self, call: _Call) -> dict[str, Any]:
        """Send ``call`` from the event loop through its operation's retry and the breaker."""
        self._check_open()
        if call.pause:
            await self._clock.asleep(call.pause)
        answer: list[dict[str, Any]] = []
        await self._transports[call.op].asend(
            self._request(call), check=self._answering(call, answer)
        )
        return answer[0]

    def _answering(self, call: _Call, answer: list[dict[str, Any]]) -> Check:
        """The reply check of ``call``: raises for a failed answer, keeps a good one's JSON."""

        def check(request: Call, reply: Reply) -> None:
            answer[:] = [_answer(request, reply, call, self.service_name)]

        return check

    def _close_sync(self) -> None:
        self.state = ClientState.CLOSED
        self.http.close()


# ---- every method, once -----------------------------------------------------------------

_Answer = TypeVar("_Answer")
_ExecutionAnswer = TypeVar("_ExecutionAnswer")
_Read = TypeVar("_Read")
_ExecutionRead = TypeVar("_ExecutionRead")


class _IntegrationMethods(
    _IntegrationCore, abc.ABC, Generic[_Answer, _ExecutionAnswer, _Read, _ExecutionRead]
):
    """Seed 003's methods for both clients: each builds its calls and hands them to the client.

    A write hands its :data:`_Plan` to ``_write`` (``_write_execution`` when it answers an
    execution), a read its one call to ``_read`` (``_read_execution``). The synchronous client
    returns the answers themselves; the async client returns a coroutine for a write and a
    :class:`DeferredRead` for a read.
    """

    @abc.abstractmethod
    def _write(self, plan: _Plan[dict[str, Any]]) -> _Answer: ...

    @abc.abstractmethod
    def _write_execution(self, plan: _Plan[WorkflowExecution]) -> _ExecutionAnswer: ...

    @abc.abstractmethod
    def _read(self, call: _Call) -> _Read: ...

    @abc.abstractmethod
    def _read_execution(self, call: _Call) -> _ExecutionRead: ...

    # ---- workflows -----------------------------------------------------------------

    def create_workflow(
        self,
        name: str,
        description: str = "",
        steps: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> _Answer:
        """Create a workflow (POST /workflows); the server validates the steps."""
        return self._write(_create_workflow(name, description, steps, metadata, status))

    def update_workflow(
        self,
        workflow_id: str,
        name: str | None = None,
        description: str | None = None,
        steps: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> _Answer:
        """Change the given fields of a workflow (PATCH); fields left as None are not sent."""
        return self._write(
            _update_workflow(workflow_id, name, description, steps, metadata, status)
        )

    def delete_workflow(self, workflow_id: str) -> _Answer:
        """Delete a workflow; answers ``{"id", "name", "deleted": True}``."""
        return self._write(_delete_workflow(workflow_id))

    def get_workflow(self, workflow_id: str) -> _Read:
        """One workflow; from the async client, await it or use it as a dict."""
        return self._read(_get(_wf(workflow_id)))

    def get_workflows(self, status: str | None = None, page: int = 1, per_page: int = 20) -> _Read:
        """A page of workflows ``{items, total, page, per_page, pages}``."""
        return self._read(_list("/workflows", status, page, per_page))

    # ---- executions ----------------------------------------------------------------

    def execute_workflow(
        self,
        workflow_id: str,
        input_data: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        poll_interval: float = 0.2,
    ) -> _ExecutionAnswer:
        """Start an execution; with ``wait`` poll it every ``poll_interval`` seconds until it ends.

        Returns the execution once it is COMPLETED, FAILED or CANCELLED, or as it
        stands when ``timeout`` seconds have passed; without ``wait``, the 202 answer.
        """
        plan = _execute_workflow(
            workflow_id,
            input_data,
            context,
            wait=wait,
            poll_interval=poll_interval,
            timeout=self.timeout,
            clock=self._clock,
            service=self.service_name,
        )
        return self._write_execution(plan)

    def get_workflow_execution_status(self, execution_id: str) -> _ExecutionRead:
        """One execution (its status, steps, output)."""
        return self._read_execution(_get(_ex(execution_id)))

    def get_workflow_executions(
        self, workflow_id: str, status: str | None = None, page: int = 1, per_page: int = 20
    ) -> _Read:
        """A page of a workflow's executions."""
        return self._read(_workflow_executions(workflow_id, status, page, per_page))

    def cancel_workflow_execution(self, execution_id: str) -> _ExecutionAnswer:
        """Cancel a pending or running execution; answers the execution."""
        return self._write_execution(_execution_action(execution_id, "cancel"))

    def resume_workflow_execution(self, execution_id: str) -> _ExecutionAnswer:
        """Resume a failed or cancelled execution from the step it stopped at."""
        return self._write_execution(_execution_action(execution_id, "resume"))

    # ---- services ------------------------------------------------------------------

    def register_service(
        self,
        name: str,
        description: str = "",
        endpoint: str | None = None,
        actions: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> _Answer:
        """Register a service (POST /services); ConflictError when the name is taken."""
        return self._write(
            _register_service(name, description, endpoint, actions, metadata, status)
        )

    def update_service(
        self,
        service_id: str,
        name: str | None = None,
        description: str | None = None,
        endpoint: str | None = None,
        status: str | None = None,
        actions: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> _Answer:
        """Change the given fields of a service (PATCH); fields left as None are not sent."""
        return self._write(
            _update_service(service_id, name, description, endpoint, status, actions, metadata)
        )

    def deregister_service(self, service_id: str) -> _Answer:
        """Deregister a service; answers ``{"id", "name", "deregistered": True}``."""
        return self._write(_deregister_service(service_id))

    def get_service(self, service_id: str) -> _Read:
        """One service, by id or name; from the async client, await it or use it as a dict."""
        return self._read(_get(_svc(service_id)))

    def get_services(self, status: str | None = None, page: int = 1, per_page: int = 20) -> _Read:
        """A page of services ``{items, total, page, per_page, pages}``."""
        return self._read(_list("/services", status, page, per_page))

    def execute_service_action(
        self,
        service_id: str,
        action: str,
        input_data: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> _Answer:
        """Run one action of a service through the integration service."""
        return self._write(_execute_service_action(service_id, action, input_data, context))

    # ---- health --------------------------------------------------------------------

    def get_integration_health(self) -> _Read:
        """The integration service's health report (an "unhealthy" 503 report is returned too)."""
        return self._read(_HEALTH)

    def get_service_health(self, service_id: str) -> _Read:
        """One registered service's health report."""
        return self._read(_service_health(service_id))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


# ---- the two clients: how each sends ----------------------------------------------------

_Awaited: TypeAlias = Coroutine[Any, Any, T]


def _as_is(answer: dict[str, Any]) -> dict[str, Any]:
    return answer


class ServiceIntegrationClient(
    _IntegrationMethods[
        _Awaited[dict[str, Any]],
        _Awaited[WorkflowExecution],
        DeferredRead[dict[str, Any]],
        DeferredRead[WorkflowExecution],
    ]
):
    """Async client for the integration service (seed 003); see the module docstring.

    ``timeout`` (seconds) bounds each HTTP attempt and how long ``execute_workflow``
    waits for an execution to finish. ``retry_policies`` replaces the policy of
    the operation types it names; ``circuit_breaker_config`` configures the one
    breaker guarding every call. ``clock`` drives every sleep (backoff, polling)
    and ``rng`` the jitter, so tests take no wall time. ``transport`` and
    ``sync_transport`` replace the network for the async and the synchronous path.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30,
        *,
        service_name: str = SERVICE_NAME,
        retry_policies: Mapping[OperationType, OperationRetryPolicy] | None = None,
        circuit_breaker_config: CircuitBreakerConfig | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sync_transport: httpx.BaseTransport | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        hooks: Sequence[Hook] = (),
        discovery: Discovery | None = None,
    ) -> None:
        super().__init__(
            base_url,
            timeout,
            service_name=service_name,
            retry_policies=retry_policies,
            circuit_breaker_config=circuit_breaker_config,
            headers=headers,
            transport=sync_transport,
            async_transport=transport,
            clock=clock,
            rng=rng,
            hooks=hooks,
            discovery=discovery,
        )

    # ---- lifecycle -----------------------------------------------------------------

    async def aclose(self) -> None:
        """Close both connection pools; idempotent. Later calls raise ClientStateError."""
        self.state = ClientState.CLOSED
        await self.http.aclose()

    async def __aenter__(self) -> ServiceIntegrationClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- sending -------------------------------------------------------------------

    async def _arun(self, plan: _Plan[T]) -> T:
        step = _advance(plan, None)
        while isinstance(step, _Call):
            step = _advance(plan, await self._asend(step))
        return step.value

    def _write(self, plan: _Plan[dict[str, Any]]) -> _Awaited[dict[str, Any]]:
        return self._arun(plan)

    def _write_execution(self, plan: _Plan[WorkflowExecution]) -> _Awaited[WorkflowExecution]:
        return self._arun(plan)

    def _read(self, call: _Call) -> DeferredRead[dict[str, Any]]:
        return self._deferred(call, _as_is)

    def _read_execution(self, call: _Call) -> DeferredRead[WorkflowExecution]:
        return self._deferred(call, WorkflowExecution)

    def _deferred(self, call: _Call, shape: Callable[[dict[str, Any]], R]) -> DeferredRead[R]:
        async def afetch() -> R:
            return shape(await self._asend(call))

        return DeferredRead(
            lambda: shape(self._send(call)), lambda: afetch().__await__(), call.describe()
        )


class ServiceIntegrationClientSync(
    _IntegrationMethods[dict[str, Any], WorkflowExecution, dict[str, Any], WorkflowExecution]
):
    """The synchronous twin of :class:`ServiceIntegrationClient`: same methods, same policies.

    Every method returns its answer directly; ``close()`` (or ``with``) releases the pool.
    """

    def close(self) -> None:
        """Close the connection pool; idempotent. Later calls raise RuntimeError."""
        self._close_sync()

    def __enter__(self) -> ServiceIntegrationClientSync:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, plan: _Plan[T]) -> T:
        step = _advance(plan, None)
        while isinstance(step, _Call):
            step = _advance(plan, self._send(step))
        return step.value

    def _write(self, plan: _Plan[dict[str, Any]]) -> dict[str, Any]:
        return self._run(plan)

    def _write_execution(self, plan: _Plan[WorkflowExecution]) -> WorkflowExecution:
        return self._run(plan)

    def _read(self, call: _Call) -> dict[str, Any]:
        return self._send(call)

    def _read_execution(self, call: _Call) -> WorkflowExecution:
        return WorkflowExecution(self._send(call))
