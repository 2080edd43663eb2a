"""``ServiceIntegrationClientSync``: the async client's methods, answered from the calling thread.

Each method is the async client's method of the same name, made blocking by
:func:`blocking`: it runs that method's coroutine on a private
:class:`ServiceIntegrationClient` whose sends and pauses are synchronous, so no
``await`` in it ever suspends and the coroutine ends in one step, without an
event loop. The requests, policies, breaker, answers and errors are the async
client's; the network is reached through the synchronous transport, from the
calling thread, so the client works from any thread (from a coroutine too,
blocking its loop as any synchronous call does).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

import httpx

from servicegrid.clients.integration.async_client import ServiceIntegrationClient
from servicegrid.clients.integration.connection import DEFAULT_BASE_URL, ClientOptions
from servicegrid.clients.integration.requests import Request
from servicegrid.clients.state import ClientState
from servicegrid.resilience import CircuitBreaker

__all__ = ["ServiceIntegrationClientSync"]

P = ParamSpec("P")
R = TypeVar("R")

_SHARED_ATTRIBUTES = frozenset({"base_url", "timeout", "service_name", "headers", "state"})


class _SendingInline(ServiceIntegrationClient):
    """The async client sending and pausing from the calling thread: its awaits never suspend."""

    async def _asend(self, request: Request) -> dict[str, Any]:
        return self._send(request)

    async def _pause(self, seconds: float) -> None:
        self._clock.sleep(seconds)

    def close(self) -> None:
        """Close the synchronous connection pool, the only one this client opens."""
        self.state = ClientState.CLOSED
        self.http.close()


def run_inline(operation: Awaitable[R]) -> R:
    """The result of ``operation``, an awaitable whose awaits all complete at once.

    It is driven to its end in one step, with no event loop; one that suspends
    (waits on a loop) is closed and raises RuntimeError.
    """
    steps = operation.__await__()
    try:
        steps.send(None)
    except StopIteration as finished:
        result: R = finished.value
        return result
    steps.close()
    raise RuntimeError(f"{operation!r} waits on an event loop: it cannot be run inline")


def blocking(
    method: Callable[Concatenate[ServiceIntegrationClient, P], Awaitable[R]],
) -> Callable[Concatenate[ServiceIntegrationClientSync, P], R]:
    """The sync client's method that runs ``method``, the async client's, and returns its result."""

    def run(client: ServiceIntegrationClientSync, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return run_inline(method(client._client, *args, **kwargs))

    run.__name__ = method.__name__
    run.__qualname__ = f"ServiceIntegrationClientSync.{method.__name__}"
    run.__doc__ = method.__doc__
    # what help() and inspect show: the async method's parameters, not its awaitable answer
    signature = inspect.signature(method).replace(return_annotation=inspect.Signature.empty)
    run.__signature__ = signature  # type: ignore[attr-defined]
    return run


class ServiceIntegrationClientSync:
    """The synchronous twin of :class:`ServiceIntegrationClient`: same methods, same policies.

    Every method returns its answer directly (a read, a plain ``dict``); ``close()``
    (or ``with``) releases the pool. ``transport`` replaces the network (an
    ``httpx.BaseTransport``); the other keyword options are the async client's
    (:class:`~servicegrid.clients.integration.connection.ClientOptions`).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self._client = _SendingInline(base_url, timeout, sync_transport=transport, **options)

    @property
    def circuit_breaker(self) -> CircuitBreaker:
        """The one breaker guarding every call of this client."""
        return self._client.circuit_breaker

    def __getattr__(self, name: str) -> Any:
        # base_url, timeout, service_name, headers and state read as the async client's
        if name in _SHARED_ATTRIBUTES:
            return getattr(self._client, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def close(self) -> None:
        """Close the connection pool; idempotent. Later calls raise ClientStateError."""
        self._client.close()

    def __enter__(self) -> ServiceIntegrationClientSync:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._client.base_url!r})"

    create_workflow = blocking(ServiceIntegrationClient.create_workflow)
    update_workflow = blocking(ServiceIntegrationClient.update_workflow)
    delete_workflow = blocking(ServiceIntegrationClient.delete_workflow)
    get_workflow = blocking(ServiceIntegrationClient.get_workflow)
    get_workflows = blocking(ServiceIntegrationClient.get_workflows)

    execute_workflow = blocking(ServiceIntegrationClient.execute_workflow)
    get_workflow_execution_status = blocking(ServiceIntegrationClient.get_workflow_execution_status)
    get_workflow_executions = blocking(ServiceIntegrationClient.get_workflow_executions)
    cancel_workflow_execution = blocking(ServiceIntegrationClient.cancel_workflow_execution)
    resume_workflow_execution = blocking(ServiceIntegrationClient.resume_workflow_execution)

    register_service = blocking(ServiceIntegrationClient.register_service)
    update_service = blocking(ServiceIntegrationClient.update_service)
    deregister_service = blocking(ServiceIntegrationClient.deregister_service)
    get_service = blocking(ServiceIntegrationClient.get_service)
    get_services = blocking(ServiceIntegrationClient.get_services)
    execute_service_action = blocking(ServiceIntegrationClient.execute_service_action)

    get_integration_health = blocking(ServiceIntegrationClient.get_integration_health)
    get_service_health = blocking(ServiceIntegrationClient.get_service_health)
