"""Service registry endpoints (seed 003), mounted under ``/api``.

.. code-block:: text

    POST   /services                 register            201 Service
    GET    /services                 list                200 ServicePage  (?status=&page=&per_page=)
    GET    /services/{service_id}    get                 200 Service
    PUT    /services/{service_id}    update (partial)    200 Service
    PATCH  /services/{service_id}    update (partial)    200 Service
    DELETE /services/{service_id}    deregister          200 DeregisterResult

``service_id`` is a service's id or its name.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, Query, Request, status

from servicegrid.integration.models import (
    DeregisterResult,
    Service,
    ServiceCreate,
    ServicePage,
    ServiceStatus,
    ServiceUpdate,
)
from servicegrid.integration.registry import ServiceRegistry

__all__ = ["MAX_PER_PAGE", "create_services_router", "get_registry"]

MAX_PER_PAGE = 100


def get_registry(request: Request) -> ServiceRegistry:
    """The registry the app's lifespan put on ``app.state.service_registry``."""
    return cast(ServiceRegistry, request.app.state.service_registry)


Registry = Annotated[ServiceRegistry, Depends(get_registry)]


def create_services_router() -> APIRouter:
    """A router with the service registry endpoints under ``/services``."""
    router = APIRouter(prefix="/services", tags=["services"])

    @router.post("", status_code=status.HTTP_201_CREATED, summary="Register a service")
    async def register_service(body: ServiceCreate, registry: Registry) -> Service:
        return await registry.register(body)

    @router.get("", summary="List services")
    async def list_services(
        registry: Registry,
        status: ServiceStatus | None = None,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 20,
    ) -> ServicePage:
        return await registry.list(status=status, page=page, per_page=per_page)

    @router.get("/{service_id}", summary="Get a service")
    async def get_service(service_id: str, registry: Registry) -> Service:
        return await registry.get(service_id)

    @router.api_route("/{service_id}", methods=["PUT", "PATCH"], summary="Update a service")
    async def update_service(service_id: str, body: ServiceUpdate, registry: Registry) -> Service:
        return await registry.update(service_id, body)

    @router.delete("/{service_id}", summary="Deregister a service")
    async def deregister_service(service_id: str, registry: Registry) -> DeregisterResult:
        removed = await registry.deregister(service_id)
        return DeregisterResult(id=removed.id, name=removed.name)

    return router
