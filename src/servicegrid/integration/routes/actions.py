"""Calling one action directly, per-service health, and the native actions, under ``/api``.

.. code-block:: text

    POST /services/{service_id}/actions/{action}/execute   call an action       200 ActionResult
    GET  /services/{service_id}/health                      the health monitor   200
    GET  /native-actions                                    our model services' actions

The input is checked against the action's input schema (422 naming each field) and the answer
against its output schema (502 when it does not match).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request

from servicegrid.integration.actions import ActionInvoker
from servicegrid.integration.execution_models import ActionRequest, ActionResult
from servicegrid.integration.native import native_actions
from servicegrid.integration.routes.services import Key, Registry
from servicegrid.integration.routes.workflows import IdempotencyKey
from servicegrid.integration.service_health import ServiceHealthBoard
from servicegrid.integration.workflow_models import StepRetry

__all__ = ["create_actions_router"]

ACTION_TIMEOUT_SECONDS = 30.0


async def get_invoker(request: Request) -> ActionInvoker:
    return cast(ActionInvoker, request.app.state.invoker)


async def get_health_board(request: Request) -> ServiceHealthBoard:
    return cast(ServiceHealthBoard, request.app.state.health_board)


Invoker = Annotated[ActionInvoker, Depends(get_invoker)]
HealthBoard = Annotated[ServiceHealthBoard, Depends(get_health_board)]


def create_actions_router() -> APIRouter:
    router = APIRouter(tags=["actions"])

    @router.post(
        "/services/{service_id}/actions/{action}/execute", summary="Execute a service action"
    )
    async def execute_service_action(
        service_id: Key,
        action: Key,
        body: ActionRequest,
        invoker: Invoker,
        idempotency_key: IdempotencyKey = None,
    ) -> ActionResult:
        target = await invoker.resolve(service_id, action)
        invoker.check_input(target, body.input_data, loc=["input_data"])
        headers = {}
        request_id = body.context.get("request_id")
        if isinstance(request_id, str):
            headers["X-Request-ID"] = request_id
        call = await invoker.call(
            target,
            body.input_data,
            idempotency_key=idempotency_key or str(uuid.uuid4()),
            retry=StepRetry(),
            timeout=ACTION_TIMEOUT_SECONDS,
            headers=headers,
        )
        return ActionResult(
            service_id=target.service.id if target.service else target.service_name,
            service=target.service_name,
            action=target.action_name,
            output=call.output,
            attempts=call.attempts,
            duration_ms=call.duration_ms,
        )

    @router.get("/services/{service_id}/health", summary="A registered service's health")
    async def service_health(
        service_id: Key, registry: Registry, board: HealthBoard
    ) -> dict[str, Any]:
        return await board.status(await registry.get(service_id))

    @router.get("/native-actions", summary="Actions of servicegrid's own model services")
    async def list_native_actions() -> list[dict[str, Any]]:
        return [action.to_dict() for action in native_actions()]

    return router
