"""Turn servicegrid errors raised by the integration routes into JSON error responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from servicegrid.errors import ResourceNotFoundError, ServiceError, ValidationError

__all__ = ["error_body", "install_error_handlers"]


def error_body(exc: ServiceError) -> dict[str, Any]:
    """The JSON body for ``exc``: its ``to_dict()`` plus ``detail`` and resource fields."""
    body = {"detail": exc.message, **exc.to_dict()}
    if isinstance(exc, ResourceNotFoundError):
        body["resource_type"] = exc.resource_type
        body["resource_id"] = exc.resource_id
    if isinstance(exc, ValidationError):
        body["validation_errors"] = exc.validation_errors
    return body


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse(status_code=exc.http_status, content=error_body(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every :class:`ServiceError` with its HTTP status (404, 409, 422, …)."""
    app.add_exception_handler(ServiceError, _service_error)
