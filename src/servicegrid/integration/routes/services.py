"""Service registry endpoints (seed 003), mounted under ``/api``.

.. code-block:: text

    POST   /services                 register            201 Service (200: the same one again)
    GET    /services                 list                200 ServicePage  (?status=&page=&per_page=)
    GET    /services/{service_id}    get                 200 Service
    PUT    /services/{service_id}    update (partial)    200 Service
    PATCH  /services/{service_id}    update (partial)    200 Service
    DELETE /services/{service_id}    deregister          200 DeregisterResult

``service_id`` is a service's id or its name.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar, cast

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import AfterValidator

from servicegrid.integration.json_checks import check_text
from servicegrid.integration.models import (
    DeregisterResult,
    Service,
    ServiceCreate,
    ServicePage,
    ServiceStatus,
    ServiceUpdate,
)
from servicegrid.integration.registry import ServiceRegistry

__all__ = [
    "CREATED_OR_SAME",
    "MAX_KEY_LENGTH",
    "MAX_PAGE",
    "MAX_PER_PAGE",
    "Key",
    "create_services_router",
    "created_or_same",
    "get_registry",
]

MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000  # bounds OFFSET: (page - 1) * per_page must fit a 64-bit integer
MAX_KEY_LENGTH = 200  # the longest name; ids are shorter

Key = Annotated[str, Path(min_length=1, max_length=MAX_KEY_LENGTH), AfterValidator(check_text)]
"""A path parameter naming a resource by id or name: bounded and free of NUL characters."""


async def get_registry(request: Request) -> ServiceRegistry:
    """The registry the app's lifespan put on ``app.state.service_registry``."""
    return cast(ServiceRegistry, request.app.state.service_registry)


Registry = Annotated[ServiceRegistry, Depends(get_registry)]


T = TypeVar("T")

CREATED_OR_SAME: Final[dict[str, Any]] = {
    "status_code": status.HTTP_201_CREATED,
    "responses": {200: {"description": "The same one was there already, and is returned"}},
}
"""How a POST that creates a named resource answers: 201, or 200 for the same one again."""


def created_or_same(response: Response, outcome: tuple[T, bool]) -> T:
    """The resource of ``outcome`` (it, and whether it is new), answered 200 if not new."""
    resource, created = outcome
    if not created:
        response.status_code = status.HTTP_200_OK
    return resource


def create_services_router() -> APIRouter:
    """A router with the service registry endpoints under ``/services``."""
    router = APIRouter(prefix="/services", tags=["services"])

    @router.post("", summary="Register a service", **CREATED_OR_SAME)
    async def register_service(
        body: ServiceCreate, registry: Registry, response: Response
    ) -> Service:
        return created_or_same(response, await registry.register(body))

    @router.get("", summary="List services")
    async def list_services(
        registry: Registry,
        status: ServiceStatus | None = None,
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 20,
    ) -> ServicePage:
        return await registry.list(status=status, page=page, per_page=per_page)

    @router.get("/{service_id}", summary="Get a service")
    async def get_service(service_id: Key, registry: Registry) -> Service:
        return await registry.get(service_id)

    # one route per method, so that each gets its own OpenAPI operation id
    @router.put("/{service_id}", summary="Update a service")
    @router.patch("/{service_id}", summary="Update a service")
    async def update_service(service_id: Key, body: ServiceUpdate, registry: Registry) -> Service:
        return await registry.update(service_id, body)

    @router.delete("/{service_id}", summary="Deregister a service")
    async def deregister_service(service_id: Key, registry: Registry) -> DeregisterResult:
        removed = await registry.deregister(service_id)
        return DeregisterResult(id=removed.id, name=removed.name)

    return router
