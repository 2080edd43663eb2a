"""``GET /health``: the integration service and its database."""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["create_health_router"]


def create_health_router(service_name: str = "integration") -> APIRouter:
    """``healthy`` (200) when the database answers a query, else ``unhealthy`` (503)."""
    router = APIRouter(tags=["health"])

    @router.get("/health", summary="Integration service health")
    async def health(request: Request) -> JSONResponse:
        engine = cast(AsyncEngine, request.app.state.database)
        checks: dict[str, Any] = {}
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = {"status": "healthy"}
        except (SQLAlchemyError, OSError) as exc:
            checks["database"] = {"status": "unhealthy", "error": str(exc)}
        healthy = all(check["status"] == "healthy" for check in checks.values())
        return JSONResponse(
            status_code=200 if healthy else 503,
            content={
                "status": "healthy" if healthy else "unhealthy",
                "service": service_name,
                "checks": checks,
            },
        )

    return router
