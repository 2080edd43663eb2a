"""The questions service's request and answer models: one set of checks for REST and gRPC.

Text is stripped of surrounding whitespace. Titles and tags refuse every control
character, bodies every one but ``\\n`` and ``\\t``; NUL is refused everywhere
(PostgreSQL cannot store it). Tags are lower-cased and duplicates dropped, keeping
the first. The ids ``search`` and ``changes`` are reserved: they are routes.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from servicegrid.apps._http import DEFAULT_PER_PAGE, MAX_PER_PAGE
from servicegrid.apps.questions.search import query_terms

__all__ = [
    "DEFAULT_CHANGES_LIMIT",
    "DEFAULT_SEARCH_LIMIT",
    "ID_PATTERN",
    "MAX_CHANGES_LIMIT",
    "MAX_SEARCH_LIMIT",
    "RESERVED_IDS",
    "ChangeKind",
    "ChangesAnswer",
    "ChangesParams",
    "ListParams",
    "Question",
    "QuestionChange",
    "QuestionCreate",
    "QuestionDeleted",
    "QuestionHit",
    "QuestionRef",
    "QuestionUpdate",
    "SearchAnswer",
    "SearchParams",
]

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
RESERVED_IDS: Final = frozenset({"search", "changes"})
MAX_TITLE_CHARS: Final = 300
MAX_BODY_CHARS: Final = 20_000
MAX_TAGS: Final = 20
MAX_TAG_CHARS: Final = 50
MAX_QUERY_CHARS: Final = 500
DEFAULT_SEARCH_LIMIT: Final = 10
MAX_SEARCH_LIMIT: Final = 100
DEFAULT_CHANGES_LIMIT: Final = 100
MAX_CHANGES_LIMIT: Final = 1000
# what the databases' integer columns and gRPC's int32 page can hold
_MAX_PAGE: Final = 2**31 - 1
_MAX_SEQ: Final = 2**63 - 1

ChangeKind = Literal["created", "updated", "deleted"]

# control characters (C0, DEL, C1) and the lone surrogates no database can encode
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _no_body_control(value: str) -> str:
    if _BODY_CONTROL.search(value):
        raise ValueError("must not contain control characters other than newline and tab")
    return value


def _not_reserved(value: str) -> str:
    if value in RESERVED_IDS:
        raise ValueError(f"{value!r} is reserved")
    return value


def _unique_tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def _has_words(value: str) -> str:
    if not query_terms(value):
        raise ValueError("must contain at least one word")
    return value


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
NewId = Annotated[Id, AfterValidator(_not_reserved)]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS),
    AfterValidator(_no_control),
]
Body = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_BODY_CHARS),
    AfterValidator(_no_body_control),
]
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=MAX_TAG_CHARS),
    AfterValidator(_no_control),
]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_unique_tags)]
Query = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS),
    AfterValidator(_no_control),
    AfterValidator(_has_words),
]


class QuestionRef(BaseModel):
    """The id a get, update or delete names (REST: the path)."""

    id: Id


class QuestionCreate(BaseModel):
    """``POST /questions``: an absent or empty ``id`` lets the service pick ``q-<12 hex>``."""

    model_config = ConfigDict(extra="forbid")

    id: NewId | None = None
    user_id: Id
    title: Title
    body: Body = ""
    tags: Tags = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _empty_id_is_none(cls, value: object) -> object:
        return None if value == "" else value


class QuestionUpdate(BaseModel):
    """``PATCH /questions/{id}``: absent fields stay as they are; ``null`` is refused."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    body: Body | None = None
    tags: Tags | None = None

    @field_validator("title", "body", "tags", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # runs only for fields the request carries: absent means unchanged, null is an error
        if value is None:
            raise ValueError("must not be null; leave the field out to keep it")
        return value


class Question(BaseModel):
    """A stored question; times are RFC 3339 UTC (``2026-12-03T18:00:00Z``)."""

    id: str
    user_id: str
    title: str
    body: str
    tags: list[str]
    created_at: str
    updated_at: str


class QuestionDeleted(BaseModel):
    """``DELETE /questions/{id}``'s answer."""

    id: str
    deleted: bool = True


class QuestionHit(BaseModel):
    """One search result; only the order of ``score`` means anything (higher is better)."""

    question: Question
    score: float


class SearchAnswer(BaseModel):
    """``GET /questions/search``: the best ``items`` first; ``total`` counts every match."""

    query: str
    items: list[QuestionHit]
    total: int


class QuestionChange(BaseModel):
    """One entry of the change feed; ``question`` as it was before a deletion."""

    seq: int
    kind: ChangeKind
    question: Question
    at: str


class ChangesAnswer(BaseModel):
    """``GET /questions/changes``: pass ``next_after`` as ``after`` to read on."""

    changes: list[QuestionChange]
    next_after: int
    has_more: bool


class ListParams(BaseModel):
    """``GET /questions``'s filters (exact match; ``tag`` lower-cased) and page."""

    user_id: Id | None = None
    tag: Tag | None = None
    page: int = Field(1, ge=1, le=_MAX_PAGE)
    per_page: int = Field(DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE)


class SearchParams(BaseModel):
    """``GET /questions/search``: ``q`` needs at least one word."""

    q: Query
    user_id: Id | None = None
    limit: int = Field(DEFAULT_SEARCH_LIMIT, ge=1, le=MAX_SEARCH_LIMIT)


class ChangesParams(BaseModel):
    """``GET /questions/changes``: the changes after seq ``after``, at most ``limit``."""

    after: int = Field(0, ge=0, le=_MAX_SEQ)
    limit: int = Field(DEFAULT_CHANGES_LIMIT, ge=1, le=MAX_CHANGES_LIMIT)
