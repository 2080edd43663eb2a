"""``ServiceIntegrationClient``: the async client, one straight-line method per REST call.

A write is an ``async def``: it builds its request, sends it through the
connection (retry, breaker) on the event loop and returns the answer. A read
returns a :class:`~servicegrid.clients.integration.deferred.DeferredRead`, which
is awaited like a coroutine or used as a mapping, as seed 003's code does both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from servicegrid._validate import check_number
from servicegrid.clients.integration import requests as rest
from servicegrid.clients.integration.answers import WorkflowExecution, execution_id, poll_wait
from servicegrid.clients.integration.connection import IntegrationConnection
from servicegrid.clients.integration.deferred import DeferredRead
from servicegrid.clients.state import ClientState

__all__ = ["ServiceIntegrationClient"]

R = TypeVar("R", bound=dict[str, Any])


def _as_is(answer: dict[str, Any]) -> dict[str, Any]:
    return answer


class ServiceIntegrationClient(IntegrationConnection):
    """Async client for the integration service (seed 003); see the package docstring.

    ``timeout`` (seconds) bounds each HTTP attempt and how long ``execute_workflow``
    waits for an execution to finish. ``transport`` and ``sync_transport`` replace
    the network for the async and the synchronous path (reads used without
    ``await`` take the synchronous one); the other keyword options are
    :class:`~servicegrid.clients.integration.connection.ClientOptions`. Read
    methods (``get_*``) return a :class:`DeferredRead`: await it or use it as a dict.
    """

    # ---- lifecycle -----------------------------------------------------------------

    async def aclose(self) -> None:
        """Close both connection pools; idempotent. Later calls raise ClientStateError."""
        self.state = ClientState.CLOSED
        await self.http.aclose()

    async def __aenter__(self) -> ServiceIntegrationClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _read(self, request: rest.Request, shape: Callable[[dict[str, Any]], R]) -> DeferredRead[R]:
        """``request`` as a read: sent on the loop when awaited, from the thread when mapped."""

        async def fetch() -> R:
            return shape(await self._asend(request))

        return DeferredRead(lambda: shape(self._send(request)), fetch, request.describe())

    async def _pause(self, seconds: float) -> None:
        """Wait between two polls of an execution."""
        await self._clock.asleep(seconds)

    # ---- workflows -----------------------------------------------------------------

    async def create_workflow(
        self,
        name: str,
        description: str = "",
        steps: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Create a workflow (POST /workflows); the server validates the steps."""
        fields = rest.WorkflowFields(name, description, steps, metadata, status)
        return await self._asend(rest.WORKFLOWS.create(fields))

    async def update_workflow(
        self,
        workflow_id: str,
        name: str | None = None,
        description: str | None = None,
        steps: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Change the given fields of a workflow (PATCH); fields left as None are not sent."""
        fields = rest.WorkflowFields(name, description, steps, metadata, status)
        request = rest.WORKFLOWS.update(workflow_id, fields)
        return await self._asend(request)

    async def delete_workflow(self, workflow_id: str) -> dict[str, Any]:
        """Delete a workflow; answers ``{"id", "name", "deleted": True}``."""
        return await self._asend(rest.WORKFLOWS.delete(workflow_id))

    def get_workflow(self, workflow_id: str) -> DeferredRead[dict[str, Any]]:
        """One workflow."""
        return self._read(rest.WORKFLOWS.get(workflow_id), _as_is)

    def get_workflows(
        self, status: str | None = None, page: int = 1, per_page: int = 20
    ) -> DeferredRead[dict[str, Any]]:
        """A page of workflows ``{items, total, page, per_page, pages}``."""
        return self._read(rest.WORKFLOWS.page(status, page, per_page), _as_is)

    # ---- executions ----------------------------------------------------------------

    async def execute_workflow(
        self,
        workflow_id: str,
        input_data: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        poll_interval: float = 0.2,
    ) -> WorkflowExecution:
        """Start an execution; with ``wait`` poll it every ``poll_interval`` seconds until it ends.

        Returns the execution once it is COMPLETED, FAILED or CANCELLED, or as it
        stands when ``timeout`` seconds have passed; without ``wait``, the 202 answer.
        """
        check_number("poll_interval", poll_interval, inclusive=False)
        deadline = self._clock.now() + self.timeout
        start = rest.execute_workflow(workflow_id, input_data, context)
        execution = WorkflowExecution(await self._asend(start))
        if not wait:
            return execution
        poll = rest.EXECUTIONS.get(execution_id(execution, self.service_name))
        while (pause := poll_wait(execution, deadline, poll_interval, self._clock)) is not None:
            await self._pause(pause)
            execution = WorkflowExecution(await self._asend(poll))
        return execution

    def get_workflow_execution_status(self, execution_id: str) -> DeferredRead[WorkflowExecution]:
        """One execution (its status, steps, output)."""
        return self._read(rest.EXECUTIONS.get(execution_id), WorkflowExecution)

    def get_workflow_executions(
        self, workflow_id: str, status: str | None = None, page: int = 1, per_page: int = 20
    ) -> DeferredRead[dict[str, Any]]:
        """A page of a workflow's executions."""
        request = rest.list_workflow_executions(workflow_id, status, page, per_page)
        return self._read(request, _as_is)

    async def cancel_workflow_execution(self, execution_id: str) -> WorkflowExecution:
        """Cancel a pending or running execution; answers the execution."""
        return WorkflowExecution(await self._asend(rest.execution_action(execution_id, "cancel")))

    async def resume_workflow_execution(self, execution_id: str) -> WorkflowExecution:
        """Resume a failed or cancelled execution from the step it stopped at."""
        return WorkflowExecution(await self._asend(rest.execution_action(execution_id, "resume")))

    # ---- services ------------------------------------------------------------------

    async def register_service(
        self,
        name: str,
        description: str = "",
        endpoint: str | None = None,
        actions: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Register a service (POST /services); ConflictError when the name is taken."""
        fields = rest.ServiceFields(name, description, endpoint, status, actions, metadata)
        request = rest.SERVICES.create(fields)
        return await self._asend(request)

    async def update_service(
        self,
        service_id: str,
        name: str | None = None,
        description: str | None = None,
        endpoint: str | None = None,
        status: str | None = None,
        actions: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change the given fields of a service (PATCH); fields left as None are not sent."""
        fields = rest.ServiceFields(name, description, endpoint, status, actions, metadata)
        request = rest.SERVICES.update(service_id, fields)
        return await self._asend(request)

    async def deregister_service(self, service_id: str) -> dict[str, Any]:
        """Deregister a service; answers ``{"id", "name", "deregistered": True}``."""
        return await self._asend(rest.SERVICES.delete(service_id))

    def get_service(self, service_id: str) -> DeferredRead[dict[str, Any]]:
        """One service, by id or name."""
        return self._read(rest.SERVICES.get(service_id), _as_is)

    def get_services(
        self, status: str | None = None, page: int = 1, per_page: int = 20
    ) -> DeferredRead[dict[str, Any]]:
        """A page of services ``{items, total, page, per_page, pages}``."""
        return self._read(rest.SERVICES.page(status, page, per_page), _as_is)

    async def execute_service_action(
        self,
        service_id: str,
        action: str,
        input_data: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run one action of a service through the integration service."""
        request = rest.execute_service_action(service_id, action, input_data, context)
        return await self._asend(request)

    # ---- health --------------------------------------------------------------------

    def get_integration_health(self) -> DeferredRead[dict[str, Any]]:
        """The integration service's health report (an "unhealthy" 503 report is returned too)."""
        return self._read(rest.integration_health(), _as_is)

    def get_service_health(self, service_id: str) -> DeferredRead[dict[str, Any]]:
        """One registered service's health report."""
        return self._read(rest.service_health(service_id), _as_is)
