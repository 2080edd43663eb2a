"""What every application's REST app shares: typed errors as JSON, ``/health``, pages.

Errors answer ``{"detail": message, "error": class name, "validation_errors": [...]}``
with the status of the one error table (404, 409, 422, 503...). Request bodies and
parameters that fail their model keep FastAPI's 422, whose ``detail`` names each
field by its location (``["body", "email"]``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from servicegrid.errors import ServiceError, ValidationError

__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "ErrorBody",
    "Page",
    "add_health_route",
    "error_body",
    "install_error_handlers",
]

DEFAULT_PER_PAGE: Final = 20
MAX_PER_PAGE: Final = 100

ItemT = TypeVar("ItemT")

_log = logging.getLogger("servicegrid.apps")


class Page(BaseModel, Generic[ItemT]):
    """One page of a listing: ``items``, how many there are in all, which page, its size."""

    items: list[ItemT]
    total: int
    page: int
    per_page: int


class ErrorBody(BaseModel):
    """A typed error's JSON (404, 409, 503...): its message, class and any field problems."""

    detail: str
    error: str
    validation_errors: list[dict[str, str]] | None = None


def error_body(error: ServiceError) -> dict[str, Any]:
    """The JSON an error answers with."""
    body: dict[str, Any] = {"detail": error.message, "error": type(error).__name__}
    if isinstance(error, ValidationError) and error.validation_errors:
        body["validation_errors"] = error.validation_errors
    return body


async def _on_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.http_status >= 500:
        _log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # a body the framework could not read at all is bad input like any other: a 422
        # naming the body, in the shape of FastAPI's own
        problem = {"loc": ["body"], "msg": str(exc.detail), "type": "body_unreadable"}
        return JSONResponse({"detail": [problem]}, status_code=422)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every :class:`ServiceError` with its status and :func:`error_body`, and an
    unreadable body with 422."""
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)


def add_health_route(
    app: FastAPI, service: str, check: Callable[[], Awaitable[dict[str, Any]]]
) -> None:
    """``GET /health``: 200 ``{"status": "healthy", "service", **check()}``, or 503
    ``{"status": "unhealthy", "error"}`` when ``check`` raises."""

    @app.get("/health", tags=["operations"], summary="Whether the service can answer")
    async def health() -> JSONResponse:
        try:
            details = await check()
        except Exception as exc:  # any failure of the check means: not healthy now
            return JSONResponse(
                {"status": "unhealthy", "service": service, "error": str(exc)}, status_code=503
            )
        return JSONResponse({"status": "healthy", "service": service, **details})
