"""Workflow endpoints, mounted under ``/api``.

.. code-block:: text

    POST   /workflows                              create              201 Workflow
    GET    /workflows                              list                200 WorkflowPage
    GET    /workflows/{workflow_id}                get                 200 Workflow
    PUT    /workflows/{workflow_id}                update (partial)    200 Workflow
    PATCH  /workflows/{workflow_id}                update (partial)    200 Workflow
    DELETE /workflows/{workflow_id}                delete              200 DeleteResult
    POST   /workflows/{workflow_id}/execute        execute             202 Execution
    GET    /workflows/{workflow_id}/executions     list executions     200 ExecutionPage

``workflow_id`` is a workflow's id or its name. ``execute`` answers at once with the PENDING
execution; an ``Idempotency-Key`` header makes a retried request return the same execution.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from servicegrid.integration.engine import ExecutionEngine
from servicegrid.integration.execution_models import (
    HEADER_VALUE_PATTERN,
    ExecuteRequest,
    Execution,
    ExecutionPage,
    ExecutionStatus,
)
from servicegrid.integration.executions import ExecutionStore
from servicegrid.integration.routes.services import (
    CREATED_OR_SAME,
    MAX_PAGE,
    MAX_PER_PAGE,
    Key,
    created_or_same,
)
from servicegrid.integration.workflow_models import (
    DeleteResult,
    Workflow,
    WorkflowCreate,
    WorkflowPage,
    WorkflowStatus,
    WorkflowUpdate,
)
from servicegrid.integration.workflows import WorkflowStore

__all__ = ["IdempotencyKey", "create_workflows_router"]


async def get_workflows(request: Request) -> WorkflowStore:
    return cast(WorkflowStore, request.app.state.workflows)


async def get_engine(request: Request) -> ExecutionEngine:
    return cast(ExecutionEngine, request.app.state.execution_engine)


async def get_executions(request: Request) -> ExecutionStore:
    return cast(ExecutionStore, request.app.state.executions)


Workflows = Annotated[WorkflowStore, Depends(get_workflows)]
Engine = Annotated[ExecutionEngine, Depends(get_engine)]
Executions = Annotated[ExecutionStore, Depends(get_executions)]
Page = Annotated[int, Query(ge=1, le=MAX_PAGE)]
PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=HEADER_VALUE_PATTERN),
]


def create_workflows_router() -> APIRouter:
    """A router with the workflow endpoints under ``/workflows``."""
    router = APIRouter(prefix="/workflows", tags=["workflows"])

    @router.post("", summary="Create a workflow", **CREATED_OR_SAME)
    async def create_workflow(
        body: WorkflowCreate, workflows: Workflows, response: Response
    ) -> Workflow:
        return created_or_same(response, await workflows.create(body))

    @router.get("", summary="List workflows")
    async def list_workflows(
        workflows: Workflows,
        status: WorkflowStatus | None = None,
        page: Page = 1,
        per_page: PerPage = 20,
    ) -> WorkflowPage:
        return await workflows.list(status=status, page=page, per_page=per_page)

    @router.get("/{workflow_id}", summary="Get a workflow")
    async def get_workflow(workflow_id: Key, workflows: Workflows) -> Workflow:
        return await workflows.get(workflow_id)

    # one route per method, so that each gets its own OpenAPI operation id
    @router.put("/{workflow_id}", summary="Update a workflow")
    @router.patch("/{workflow_id}", summary="Update a workflow")
    async def update_workflow(
        workflow_id: Key, body: WorkflowUpdate, workflows: Workflows
    ) -> Workflow:
        return await workflows.update(workflow_id, body)

    @router.delete("/{workflow_id}", summary="Delete a workflow")
    async def delete_workflow(workflow_id: Key, workflows: Workflows) -> DeleteResult:
        removed = await workflows.delete(workflow_id)
        return DeleteResult(id=removed.id, name=removed.name)

    @router.post(
        "/{workflow_id}/execute",
        status_code=status.HTTP_202_ACCEPTED,
        summary="Execute a workflow",
    )
    async def execute_workflow(
        workflow_id: Key,
        body: ExecuteRequest,
        workflows: Workflows,
        engine: Engine,
        idempotency_key: IdempotencyKey = None,
    ) -> Execution:
        workflow = await workflows.get(workflow_id)
        return await engine.execute(workflow, body, idempotency_key=idempotency_key)

    @router.get("/{workflow_id}/executions", summary="List a workflow's executions")
    async def list_executions(
        workflow_id: Key,
        workflows: Workflows,
        executions: Executions,
        status: ExecutionStatus | None = None,
        page: Page = 1,
        per_page: PerPage = 20,
    ) -> ExecutionPage:
        workflow = await workflows.get(workflow_id)
        return await executions.list(workflow.id, status=status, page=page, per_page=per_page)

    return router
