"""The orchestrator's request and answers, as seed 002 names them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "Citation",
    "ContextType",
    "OrchestrationRequest",
    "OrchestrationResponse",
    "ServiceUsed",
]

ContextType = Literal["questions", "documents", "all"]

UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2_000)]


class OrchestrationRequest(BaseModel):
    """One question of one user: what to search (``context_type``), how many sources at most,
    whether to read the user's profile, and which protocol reaches seed 002's services."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: UserId
    query: Query
    context_type: ContextType = "questions"
    max_results: int = Field(5, ge=1, le=50)
    include_user_context: bool = True
    use_grpc: bool = False


class Citation(BaseModel):
    """A source the answer may cite as [n] (n: its place in ``citations``, from 1).

    A question's ``id`` is the question's own id; a document chunk's is the chunk's,
    with its ``file_name`` and ``page``.
    """

    id: str
    source: Literal["question", "document"]
    text: str
    score: float
    title: str = ""
    file_name: str | None = None
    page: int | None = None


class ServiceUsed(BaseModel):
    """What one service did for this answer, and what was done instead when it failed."""

    service: str
    status: Literal["used", "skipped", "failed"]
    reason: str = ""


class OrchestrationResponse(BaseModel):
    """The answer, how it was made, its sources, and which services helped."""

    query: str
    answer: str
    answer_mode: Literal["llm", "extractive"]
    citations: list[Citation]
    user_context: dict[str, Any] | None
    services_used: list[ServiceUsed]
    processing_time_ms: float
