"""``ServiceIntegrationClientSync``: the synchronous twin of the async client.

Same methods, same requests, same policies and breaker; each method sends from
the calling thread and returns the answer itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from servicegrid._validate import check_number
from servicegrid.clients.integration import requests as rest
from servicegrid.clients.integration.answers import WorkflowExecution, execution_id, poll_wait
from servicegrid.clients.integration.connection import IntegrationConnection
from servicegrid.clients.state import ClientState

__all__ = ["ServiceIntegrationClientSync"]


class ServiceIntegrationClientSync(IntegrationConnection):
    """The synchronous twin of :class:`ServiceIntegrationClient`: same methods, same policies.

    Every method returns its answer directly; ``close()`` (or ``with``) releases the pool.
    ``transport`` replaces the network (an ``httpx.BaseTransport``).
    """

    def close(self) -> None:
        """Close the connection pool; idempotent. Later calls raise ClientStateError."""
        self.state = ClientState.CLOSED
        self.http.close()

    def __enter__(self) -> ServiceIntegrationClientSync:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- workflows -----------------------------------------------------------------

    def create_workflow(
        self,
        name: str,
        description: str = "",
        steps: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Create a workflow (POST /workflows); the server validates the steps."""
        return self._send(rest.create_workflow(name, description, steps, metadata, status))

    def update_workflow(
        self,
        workflow_id: str,
        name: str | None = None,
        description: str | None = None,
        steps: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Change the given fields of a workflow (PATCH); fields left as None are not sent."""
        request = rest.update_workflow(workflow_id, name, description, steps, metadata, status)
        return self._send(request)

    def delete_workflow(self, workflow_id: str) -> dict[str, Any]:
        """Delete a workflow; answers ``{"id", "name", "deleted": True}``."""
        return self._send(rest.delete_workflow(workflow_id))

    def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        """One workflow."""
        return self._send(rest.get_workflow(workflow_id))

    def get_workflows(
        self, status: str | None = None, page: int = 1, per_page: int = 20
    ) -> dict[str, Any]:
        """A page of workflows ``{items, total, page, per_page, pages}``."""
        return self._send(rest.list_workflows(status, page, per_page))

    # ---- executions ----------------------------------------------------------------

    def execute_workflow(
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
        execution = WorkflowExecution(self._send(start))
        if not wait:
            return execution
        poll = rest.get_execution(execution_id(execution, self.service_name))
        while (pause := poll_wait(execution, deadline, poll_interval, self._clock)) is not None:
            self._clock.sleep(pause)
            execution = WorkflowExecution(self._send(poll))
        return execution

    def get_workflow_execution_status(self, execution_id: str) -> WorkflowExecution:
        """One execution (its status, steps, output)."""
        return WorkflowExecution(self._send(rest.get_execution(execution_id)))

    def get_workflow_executions(
        self, workflow_id: str, status: str | None = None, page: int = 1, per_page: int = 20
    ) -> dict[str, Any]:
        """A page of a workflow's executions."""
        return self._send(rest.list_workflow_executions(workflow_id, status, page, per_page))

    def cancel_workflow_execution(self, execution_id: str) -> WorkflowExecution:
        """Cancel a pending or running execution; answers the execution."""
        return WorkflowExecution(self._send(rest.execution_action(execution_id, "cancel")))

    def resume_workflow_execution(self, execution_id: str) -> WorkflowExecution:
        """Resume a failed or cancelled execution from the step it stopped at."""
        return WorkflowExecution(self._send(rest.execution_action(execution_id, "resume")))

    # ---- services ------------------------------------------------------------------

    def register_service(
        self,
        name: str,
        description: str = "",
        endpoint: str | None = None,
        actions: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Register a service (POST /services); ConflictError when the name is taken."""
        request = rest.register_service(name, description, endpoint, actions, metadata, status)
        return self._send(request)

    def update_service(
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
        request = rest.update_service(
            service_id, name, description, endpoint, status, actions, metadata
        )
        return self._send(request)

    def deregister_service(self, service_id: str) -> dict[str, Any]:
        """Deregister a service; answers ``{"id", "name", "deregistered": True}``."""
        return self._send(rest.deregister_service(service_id))

    def get_service(self, service_id: str) -> dict[str, Any]:
        """One service, by id or name."""
        return self._send(rest.get_service(service_id))

    def get_services(
        self, status: str | None = None, page: int = 1, per_page: int = 20
    ) -> dict[str, Any]:
        """A page of services ``{items, total, page, per_page, pages}``."""
        return self._send(rest.list_services(status, page, per_page))

    def execute_service_action(
        self,
        service_id: str,
        action: str,
        input_data: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run one action of a service through the integration service."""
        return self._send(rest.execute_service_action(service_id, action, input_data, context))

    # ---- health --------------------------------------------------------------------

    def get_integration_health(self) -> dict[str, Any]:
        """The integration service's health report (an "unhealthy" 503 report is returned too)."""
        return self._send(rest.integration_health())

    def get_service_health(self, service_id: str) -> dict[str, Any]:
        """One registered service's health report."""
        return self._send(rest.service_health(service_id))
