"""Turn servicegrid errors raised by the integration routes into JSON error responses.

Error bodies repeat what the client sent (FastAPI's 422 lists each bad ``input``), and that may
be what no UTF-8 JSON can hold: a lone surrogate (``"\\ud800"``), ``NaN``, or nesting too deep
to encode. They are written as ASCII JSON, with non-finite numbers as strings, and inputs too
deep to repeat are left out, so that answering a bad request never fails.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from servicegrid.errors import ResourceNotFoundError, ServiceError, ValidationError

__all__ = ["SafeJSONResponse", "error_body", "install_error_handlers"]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class SafeJSONResponse(JSONResponse):
    """JSON in ASCII (``\\uXXXX`` escapes), non-finite numbers as strings: it always renders."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(_finite(content), ensure_ascii=True, separators=(",", ":"))
        return text.encode("ascii")


_PATH_PART = re.compile(r"[^.\[\]]+")


def _loc(field: str) -> list[str | int]:
    """A field path (``steps.0.next``, ``texts[1]``) as FastAPI's ``loc`` in the request body."""
    parts = _PATH_PART.findall(field)
    return ["body", *(int(part) if part.isdigit() else part for part in parts)]


def error_body(exc: ServiceError) -> dict[str, Any]:
    """The JSON body for ``exc``: its ``to_dict()`` plus ``detail`` and resource fields.

    A ValidationError's ``detail`` is FastAPI's own 422 shape (``loc``, ``msg``,
    ``type``), so clients read one format whether FastAPI or a route refused the
    request; ``validation_errors`` keeps servicegrid's ``field``/``message``/``type``.
    """
    body: dict[str, Any] = {"detail": exc.message, **exc.to_dict()}
    if isinstance(exc, ResourceNotFoundError):
        body["resource_type"] = exc.resource_type
        body["resource_id"] = exc.resource_id
    if isinstance(exc, ValidationError):
        body["validation_errors"] = exc.validation_errors
        body["detail"] = [
            {"loc": _loc(error["field"]), "msg": error["message"], "type": error["type"]}
            for error in exc.validation_errors
        ]
    return body


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return SafeJSONResponse(status_code=exc.http_status, content=error_body(exc))


async def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422 answer, written so that any echoed input renders."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    try:
        return SafeJSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})
    except RecursionError:  # an input nested too deeply to encode: say what is wrong without it
        bare = [
            {key: error[key] for key in ("type", "loc", "msg") if key in error} for error in errors
        ]
        return SafeJSONResponse(status_code=422, content={"detail": jsonable_encoder(bare)})


def install_error_handlers(app: FastAPI) -> None:
    """Answer every :class:`ServiceError` with its HTTP status (404, 409, 422, …).

    Request validation errors keep FastAPI's 422 body, rendered by :class:`SafeJSONResponse`.
    """
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
