"""API models of the service registry (seed 003): services, their actions, pages of services.

Requests (:class:`ServiceCreate`, :class:`ServiceUpdate`) are separate from the response
(:class:`Service`). Action schemas are checked to be valid JSON Schema, action names are unique
within a service, and the endpoint is an http(s) URL. Texts and JSON values are checked as
:mod:`servicegrid.integration.json_checks` describes (no NUL in texts, no NaN, bounded nesting).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from servicegrid.integration.json_checks import (
    JsonObject,
    SafeStr,
    Text,
    check_json_schema,
    check_text,
)
from servicegrid.integration.partial_update import PartialUpdate

__all__ = [
    "DeregisterResult",
    "HttpMethod",
    "JsonSchema",
    "Service",
    "ServiceAction",
    "ServiceCreate",
    "ServicePage",
    "ServiceStatus",
    "ServiceUpdate",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class ServiceStatus(enum.StrEnum):
    """Whether a registered service takes part in workflows."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class HttpMethod(enum.StrEnum):
    """The HTTP method an action is called with."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


def _check_http_url(value: str) -> str:
    try:
        AnyHttpUrl(value)
    except PydanticValidationError:
        raise ValueError("must be an http(s) URL") from None
    return value


JsonSchema = Annotated[dict[str, Any], AfterValidator(check_json_schema)]
"""A JSON object that is a valid JSON Schema (of the draft its ``$schema`` names, else 2020-12)."""

HttpUrl = Annotated[
    str,
    Field(min_length=1, max_length=2048),
    AfterValidator(check_text),
    AfterValidator(_check_http_url),
]
ServiceName = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]


class ServiceAction(BaseModel):
    """One operation a service offers, with the JSON Schemas of its input and output."""

    model_config = ConfigDict(extra="forbid")

    name: ServiceName
    description: Text = ""
    input_schema: JsonSchema
    output_schema: JsonSchema
    method: HttpMethod = HttpMethod.POST
    # no control characters: the path goes into the URL of every call
    path: SafeStr | None = Field(default=None, max_length=2048, pattern=r"^/[^\x00-\x1f\x7f]*$")


def _unique_action_names(actions: list[ServiceAction]) -> list[ServiceAction]:
    names = [action.name for action in actions]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"action names must be unique; repeated: {', '.join(duplicates)}")
    return actions


Actions = Annotated[list[ServiceAction], AfterValidator(_unique_action_names)]


class ServiceCreate(BaseModel):
    """The body of a registration."""

    model_config = ConfigDict(extra="forbid")

    name: ServiceName
    description: Text = ""
    endpoint: HttpUrl
    status: ServiceStatus = ServiceStatus.ACTIVE
    metadata: JsonObject = Field(default_factory=dict)
    actions: Actions = Field(default_factory=list)


class ServiceUpdate(PartialUpdate):
    """A partial update: only the fields present in the body change; none may be null."""

    name: ServiceName | None = None
    description: Text | None = None
    endpoint: HttpUrl | None = None
    status: ServiceStatus | None = None
    metadata: JsonObject | None = None
    actions: Actions | None = None


class Service(BaseModel):
    """A registered service as the API returns it."""

    id: str
    name: str
    description: str
    endpoint: str
    status: ServiceStatus
    metadata: dict[str, Any]
    actions: list[ServiceAction]
    created_at: datetime
    updated_at: datetime


class ServicePage(BaseModel):
    """One page of services; ``pages`` is the number of pages at this ``per_page``."""

    items: list[Service]
    total: int
    page: int
    per_page: int
    pages: int


class DeregisterResult(BaseModel):
    """The answer to a deregistration."""

    id: str
    name: str
    deregistered: bool = True
