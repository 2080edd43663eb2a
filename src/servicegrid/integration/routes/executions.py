"""Execution endpoints, mounted under ``/api``.

.. code-block:: text

    GET  /executions/{execution_id}           status, output, error and every step   200 Execution
    POST /executions/{execution_id}/cancel    cancel an unfinished execution          200 Execution
    POST /executions/{execution_id}/resume    rerun a failed one from where it failed 200 Execution
"""

from __future__ import annotations

from fastapi import APIRouter

from servicegrid.integration.execution_models import Execution
from servicegrid.integration.routes.services import Key
from servicegrid.integration.routes.workflows import Engine, Executions

__all__ = ["create_executions_router"]


def create_executions_router() -> APIRouter:
    """A router with the execution endpoints under ``/executions``."""
    router = APIRouter(prefix="/executions", tags=["executions"])

    @router.get("/{execution_id}", summary="Get an execution's status")
    async def get_execution(execution_id: Key, executions: Executions) -> Execution:
        return await executions.get(execution_id)

    @router.post("/{execution_id}/cancel", summary="Cancel an execution")
    async def cancel_execution(execution_id: Key, engine: Engine) -> Execution:
        return await engine.cancel(execution_id)

    @router.post("/{execution_id}/resume", summary="Resume a failed or cancelled execution")
    async def resume_execution(execution_id: Key, engine: Engine) -> Execution:
        return await engine.resume(execution_id)

    return router
