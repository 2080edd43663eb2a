"""The API gateway's request and answer models; the gRPC servicer checks requests with them too.

A proxied ``service`` is a discovery name (``user-service``), never a URL, so the
gateway only ever reaches instances that discovery knows. A ``path`` is a path
(and query) on that service, with no scheme, no ``..`` segment and nothing that
would change the request line.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal
from urllib.parse import unquote

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, field_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "HTTP_METHODS",
    "MAX_HEADERS",
    "MAX_PATH_LENGTH",
    "HealthStatus",
    "HttpMethod",
    "InstanceHealthAnswer",
    "ProxyRequest",
    "RateLimitAnswer",
    "RateLimitCheckRequest",
    "ServiceHealthAnswer",
    "ValidateAnswer",
    "ValidateRequest",
    "service_name_problem",
]

HTTP_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
MAX_PATH_LENGTH: Final = 2048
MAX_HEADERS: Final = 50
_MAX_HEADER_NAME: Final = 256
_MAX_HEADER_VALUE: Final = 8192

_SERVICE_NAME: Final = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HEADER_NAME: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token
_PRINTABLE: Final = re.compile(r"^[\t\x20-\x7e]*$")
_RESOURCE: Final = r"^[A-Za-z0-9_.\-/]{1,128}$"
_ACTION: Final = r"^[A-Za-z0-9_.\-]{1,64}$"


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


HttpMethod = Annotated[
    Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], BeforeValidator(_upper)
]
HealthStatus = Literal["healthy", "unhealthy", "unknown"]


def service_name_problem(value: str) -> str | None:
    """Why ``value`` cannot name a discovered service, or None when it can."""
    if "://" in value or any(c in value for c in "/:."):
        return "must be a service's discovery name (e.g. 'user-service'), not a URL or address"
    if not _SERVICE_NAME.match(value):
        return "must be a discovery name: 1 to 63 lower-case letters, digits and '-'"
    return None


def _path_problem(value: str) -> str | None:
    if not value.startswith("/"):
        return "must start with '/'"
    if "://" in value:
        return "must be a path on the service, not a URL"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "must not contain whitespace or control characters"
    if not value.isascii():
        return "must be ASCII; percent-encode other characters"
    route = value.split("?", 1)[0].split("#", 1)[0]
    if any(unquote(segment) == ".." for segment in route.split("/")):
        return "must not contain a '..' segment"
    return None


def _invalid(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


class ProxyRequest(BaseModel):
    """``POST /proxy``: one request to forward to a discovered service."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(description="a discovery name, e.g. 'user-service'; never a URL")
    method: HttpMethod = "GET"
    path: str = Field("/", max_length=MAX_PATH_LENGTH, description="path and query string")
    headers: dict[str, str] = Field(default_factory=dict)
    body: JsonValue = Field(None, description="sent as JSON; null: no body")

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        problem = service_name_problem(value)
        if problem is not None:
            raise _invalid("service_name", problem)
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        problem = _path_problem(value)
        if problem is not None:
            raise _invalid("path", problem)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_HEADERS:
            raise _invalid("too_long", f"at most {MAX_HEADERS} headers")
        for name, text in value.items():
            if len(name) > _MAX_HEADER_NAME or not _HEADER_NAME.match(name):
                raise _invalid("header_name", f"{name[:64]!r} is not an HTTP header name")
            if len(text) > _MAX_HEADER_VALUE or not _PRINTABLE.match(text):
                raise _invalid(
                    "header_value",
                    f"the value of {name!r} must be printable ASCII, "
                    f"at most {_MAX_HEADER_VALUE} characters",
                )
        return value


class ValidateRequest(BaseModel):
    """``POST /validate``: may this API key do ``action`` on ``resource``?"""

    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=512)
    resource: str = Field(pattern=_RESOURCE)
    action: str = Field(pattern=_ACTION)


class ValidateAnswer(BaseModel):
    """The verdict; ``principal`` is empty for an unknown key."""

    allowed: bool
    principal: str
    reason: str


class InstanceHealthAnswer(BaseModel):
    """One instance as its probe found it; ``error`` is empty when it answered serving."""

    address: str
    status: Literal["healthy", "unhealthy"]
    response_time_ms: float
    error: str = ""


class ServiceHealthAnswer(BaseModel):
    """``GET /health/{service_name}``: healthy when some instance is; ``backend`` found it."""

    service: str
    status: HealthStatus
    instances: list[InstanceHealthAnswer]
    backend: str


def _printable(value: str) -> str:
    if not value.isprintable():
        raise _invalid("printable", "must not contain control characters")
    return value


class RateLimitCheckRequest(BaseModel):
    """``POST /rate-limit/check``: count one request of ``client_id`` on ``resource``."""

    model_config = ConfigDict(extra="forbid")

    client_id: Annotated[str, Field(min_length=1, max_length=256)]
    resource: str = Field("default", pattern=_RESOURCE)

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        return _printable(value)


class RateLimitAnswer(BaseModel):
    """Whether the request is allowed (and counted); seconds until refilled / until one token."""

    allowed: bool
    remaining: int
    reset_after_seconds: float
    retry_after_seconds: float
