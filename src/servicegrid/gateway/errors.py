"""Errors as each route family answers them.

OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, is used
everywhere except TEI's paths (``/embed``, ``/rerank``), which answer
``{"error": "...", "error_type": "..."}``. Any :class:`ServiceError` gets the
status of its ``http_status``; 429 and 503 carry ``Retry-After`` (whole
seconds, rounded up; 1 when the error gave no hint).
"""

from __future__ import annotations

import logging
import math
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from servicegrid.errors import (
    PayloadTooLarge,
    ResourceNotFoundError,
    ServiceError,
    ValidationError,
)

__all__ = [
    "TEI_PATHS",
    "error_code",
    "install_error_handlers",
    "problem_response",
    "service_error_response",
]

_log = logging.getLogger("servicegrid.gateway")

TEI_PATHS = frozenset({"/embed", "/rerank"})

_OPENAI_TYPES = {
    401: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_TEI_TYPES = {401: "unauthorized", 413: "validation", 422: "validation", 429: "overloaded"}
_RETRY_STATUSES = frozenset({429, 503})


def error_code(error: BaseException) -> str:
    """The ``code`` an error answer carries: its class name, snake_cased."""
    name = type(error).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _retry_after(status: int, retry_after: float | None) -> dict[str, str]:
    if status not in _RETRY_STATUSES:
        return {}
    seconds = 1 if retry_after is None else max(1, math.ceil(retry_after))
    return {"Retry-After": str(seconds)}


def problem_response(
    path: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    retry_after: float | None = None,
) -> JSONResponse:
    """An error answer in the shape of ``path``'s route family."""
    # A message may quote the caller's input, and JSON lets that hold lone surrogates.
    message = message.encode("utf-8", "replace").decode("utf-8")
    headers = _retry_after(status, retry_after)
    if path in TEI_PATHS:
        kind = _TEI_TYPES.get(status, "backend" if status >= 500 else "validation")
        if status == 503:
            kind = "unhealthy"
        return JSONResponse({"error": message, "error_type": kind}, status, headers=headers)
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"message": message, "type": kind, "param": param, "code": code}
    return JSONResponse({"error": body}, status, headers=headers)


def service_error_response(path: str, error: ServiceError) -> JSONResponse:
    """The answer for ``error``: its ``http_status``, and a code and param where one applies."""
    param: str | None = None
    code = error_code(error)
    if isinstance(error, ResourceNotFoundError) and error.resource_type == "model":
        param, code = "model", "model_not_found"
    elif isinstance(error, ValidationError) and error.validation_errors:
        first = error.validation_errors[0]
        param, code = first["field"] or None, first["type"]
    elif isinstance(error, PayloadTooLarge):
        param = str(error.details.get("field") or "") or None
    status = error.http_status
    if status >= 500 and status not in (502, 503, 504):
        # a servicegrid error this deep came from an upstream (a model service, an LLM host):
        # to the caller that is a bad gateway, never the gateway's own 500
        _log.error("request to %s failed upstream", path, exc_info=error)
        status = 502
    return problem_response(
        path, status, error.message, code=code, param=param, retry_after=error.retry_after
    )


def _field_of(loc: tuple[object, ...]) -> str:
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
        return parts[1]
    return parts[0] if parts else "body"


async def _on_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return service_error_response(request.url.path, exc)


async def _on_request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": "invalid"}
    loc = tuple(first.get("loc", ("body",)))
    field = _field_of(loc)
    if first.get("type") == "json_invalid":
        field = "body"
    message = f"{field}: {first.get('msg', 'invalid value')}"
    return problem_response(
        request.url.path, 422, message, code=str(first.get("type", "invalid")), param=field
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # the framework could not read the body at all (bytes that are not UTF-8 inside
        # JSON, broken multipart): bad input like any other, so a 422 naming the body
        return problem_response(
            request.url.path, 422, f"body: {exc.detail}", code="body_unreadable", param="body"
        )
    response = problem_response(request.url.path, exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.error("unexpected error answering %s", request.url.path, exc_info=exc)
    return problem_response(request.url.path, 500, "internal error", code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers; Starlette picks one by walking the exception's MRO."""
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
