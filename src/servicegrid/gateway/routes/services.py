"""Seed 002's service-integration endpoints: users, questions and the API gateway, through
their clients (``use_grpc`` picks the protocol)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from servicegrid.gateway.routes import upstreams_of
from servicegrid.gateway.routes.orchestrate import USER_ID_PATTERN, UseGrpc

__all__ = ["services_router"]

_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_RESOURCE = r"^[A-Za-z0-9_.\-/]{1,128}$"
_ACTION = r"^[A-Za-z0-9_.\-]{1,64}$"
UserId = Annotated[str, Path(pattern=USER_ID_PATTERN)]


class ProxyBody(BaseModel):
    """A request for the API gateway to forward to a discovered service."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(pattern=_NAME, description="A discovery name, never a URL")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = Field("/", min_length=1, max_length=2048, pattern=r"^/[\x21-\x7e]*$")
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    body: Any = None


class ValidateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=512)
    resource: str = Field(pattern=_RESOURCE)
    action: str = Field(pattern=_ACTION)


class RateLimitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=256, pattern=r"^[\x20-\x7e]+$")
    resource: str = Field("default", pattern=_RESOURCE)


def services_router() -> APIRouter:
    """The ``/services`` routes; the services' typed errors answer with their statuses."""
    router = APIRouter(tags=["services"])

    @router.get("/services/user/{user_id}/profile", summary="A user and their questions")
    async def profile(request: Request, user_id: UserId, use_grpc: UseGrpc = False) -> Any:
        upstreams = upstreams_of(request)
        user = await upstreams.users(use_grpc).get_user(user_id)
        questions = await upstreams.questions(use_grpc).get_user_questions(user_id, per_page=5)
        return {
            "user": user,
            "questions": {"total": questions["total"], "recent": questions["items"]},
        }

    @router.get("/services/questions/user/{user_id}", summary="One page of a user's questions")
    async def user_questions(
        request: Request,
        user_id: UserId,
        use_grpc: UseGrpc = False,
        page: Annotated[int, Query(ge=1, le=2**31 - 1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Any:
        client = upstreams_of(request).questions(use_grpc)
        return await client.get_user_questions(user_id, page=page, per_page=per_page)

    @router.post("/services/gateway/proxy", summary="Forward through the API gateway")
    async def proxy(request: Request, body: ProxyBody, use_grpc: UseGrpc = False) -> Any:
        client = upstreams_of(request).api_gateway(use_grpc)
        return await client.proxy_request(
            body.service, body.method, body.path, headers=body.headers, body=body.body
        )

    @router.post("/services/gateway/validate", summary="Ask the API gateway about an API key")
    async def validate(request: Request, body: ValidateBody, use_grpc: UseGrpc = False) -> Any:
        client = upstreams_of(request).api_gateway(use_grpc)
        return await client.validate_request(body.api_key, body.resource, body.action)

    @router.get("/services/gateway/health/{service_name}", summary="A service's health")
    async def service_health(
        request: Request,
        service_name: Annotated[str, Path(pattern=_NAME)],
        use_grpc: UseGrpc = False,
    ) -> Any:
        client = upstreams_of(request).api_gateway(use_grpc)
        return await client.get_service_health(service_name)

    @router.post("/services/gateway/rate-limit/check", summary="Count one request of a client")
    async def rate_limit(request: Request, body: RateLimitBody, use_grpc: UseGrpc = False) -> Any:
        client = upstreams_of(request).api_gateway(use_grpc)
        return await client.check_rate_limit(body.client_id, body.resource)

    return router
