"""The users service's models: what a request may carry and what a user looks like.

The same models check REST bodies and gRPC requests (through
:func:`~servicegrid.apps._validation.validated`). Limits are checked on the text as
sent, then surrounding whitespace is stripped, so the OpenAPI patterns and lengths
say exactly what is accepted.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from servicegrid.errors import ValidationError

__all__ = [
    "ID_PATTERN",
    "Deleted",
    "User",
    "UserCreate",
    "UserUpdate",
    "check_id",
]

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
USERNAME_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}$"
# Cc characters but \t and \n, and the surrogates PostgreSQL and SQLite cannot encode
_CONTROL: Final = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
_FORBIDDEN = re.compile(rf"[{_CONTROL}\ud800-\udfff]")
TEXT_PATTERN: Final = rf"^[^{_CONTROL}]*$"
NONBLANK_TEXT_PATTERN: Final = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"
EMAIL_PATTERN: Final = rf"^[^@\s{_CONTROL}]+@[^@\s{_CONTROL}]+\.[^@\s{_CONTROL}]+$"
MAX_EMAIL_CHARS: Final = 254
MAX_FULL_NAME_CHARS: Final = 200
MAX_INTERESTS: Final = 50
MAX_INTEREST_CHARS: Final = 64

_ID = re.compile(ID_PATTERN)
_USERNAME = re.compile(USERNAME_PATTERN)
_EMAIL = re.compile(EMAIL_PATTERN)


def _invalid(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _clean_text(value: str) -> str:
    if _FORBIDDEN.search(value):
        raise _invalid("control_character", "must not contain control characters but \\n and \\t")
    return value.strip()


def _nonblank_text(value: str) -> str:
    value = _clean_text(value)
    if not value:
        raise _invalid("blank", "must not be blank")
    return value


def _user_id(value: str) -> str:
    if value and not _ID.fullmatch(value):
        raise _invalid(
            "id_pattern",
            "must start with a letter or digit, then up to 127 letters, digits or _ . : -",
        )
    return value


def _username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise _invalid("username_pattern", "must be 1 to 64 letters, digits or _ . -")
    return value


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise _invalid(
            "email",
            "must be one @ between a non-empty local part and a domain with a dot, no spaces",
        )
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _not_nullable(schema: dict[str, Any]) -> None:
    """Document an optional update field as its type alone: null is refused, not 'unchanged'."""
    schema.pop("default", None)
    for option in schema.pop("anyOf", ()):
        if option.get("type") != "null":
            schema.update(option)


OptionalId = Annotated[
    str,
    Field(
        max_length=128,
        json_schema_extra={"pattern": r"^(?:[A-Za-z0-9][A-Za-z0-9_.:-]{0,127})?$"},
        description="Empty or omitted: the service picks one (user-<12 hex>).",
    ),
    AfterValidator(_user_id),
]
Username = Annotated[
    str,
    Field(min_length=1, max_length=64, json_schema_extra={"pattern": USERNAME_PATTERN}),
    AfterValidator(_username),
]
Email = Annotated[
    str,
    Field(max_length=MAX_EMAIL_CHARS, json_schema_extra={"pattern": EMAIL_PATTERN}),
    AfterValidator(_email),
]
FullName = Annotated[
    str,
    Field(max_length=MAX_FULL_NAME_CHARS, json_schema_extra={"pattern": TEXT_PATTERN}),
    AfterValidator(_clean_text),
]
Interest = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_INTEREST_CHARS,
        json_schema_extra={"pattern": NONBLANK_TEXT_PATTERN},
    ),
    AfterValidator(_nonblank_text),
]
Interests = Annotated[
    list[Interest],
    Field(
        max_length=MAX_INTERESTS,
        description="Stripped; duplicates are dropped, the first kept in place.",
    ),
    AfterValidator(_unique),
]


class UserCreate(BaseModel):
    """``POST /users`` and ``CreateUser``."""

    model_config = ConfigDict(extra="forbid")

    id: OptionalId = ""
    username: Username
    email: Email
    full_name: FullName = ""
    interests: Interests = Field(default_factory=list)


class UserUpdate(BaseModel):
    """``PATCH /users/{user_id}`` and ``UpdateUser``: an absent field stays as it is."""

    model_config = ConfigDict(extra="forbid")

    username: Username | None = Field(default=None, json_schema_extra=_not_nullable)
    email: Email | None = Field(default=None, json_schema_extra=_not_nullable)
    full_name: FullName | None = Field(default=None, json_schema_extra=_not_nullable)
    interests: Interests | None = Field(default=None, json_schema_extra=_not_nullable)

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any) -> Any:
        if value is None:
            raise _invalid("null", "must not be null; leave the field out to keep it")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the request sets, by name."""
        return self.model_dump(exclude_unset=True)


class User(BaseModel):
    """A user as the service answers it; times are RFC 3339 UTC (``2026-12-03T18:00:00Z``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    username: str
    email: str
    full_name: str
    interests: list[str]
    created_at: str
    updated_at: str


class Deleted(BaseModel):
    """What a delete answers."""

    id: str
    deleted: bool = True


def check_id(field: str, value: str) -> str:
    """``value`` if it is a valid id; else ValidationError naming ``field``."""
    if not value:
        raise ValidationError.for_field(field, "is required", type="missing")
    if not _ID.fullmatch(value):
        raise ValidationError.for_field(
            field,
            "must start with a letter or digit, then up to 127 letters, digits or _ . : -",
            type="id_pattern",
        )
    return value
