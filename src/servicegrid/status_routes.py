"""The seed 001 status endpoint as a FastAPI router any app can mount.

.. code-block:: python

    app.include_router(create_status_router())   # GET /v1/api/status/services
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from servicegrid.status import DEFAULT_REGISTRY, StatusRegistry

__all__ = ["STATUS_PATH", "create_status_router"]

STATUS_PATH = "/v1/api/status/services"


def create_status_router(
    registry: StatusRegistry = DEFAULT_REGISTRY, *, path: str = STATUS_PATH
) -> APIRouter:
    """A router answering ``GET path`` with ``{key: get_status()}`` for every live reporter."""
    router = APIRouter(tags=["status"])

    @router.get(path, summary="Circuit breaker status of every registered service")
    def service_statuses() -> dict[str, dict[str, Any]]:
        return registry.statuses()

    return router
