"""The questions service's REST app (seed 002): CRUD, listing, keyword search, change feed.

``/questions/search`` and ``/questions/changes`` are declared before
``/questions/{question_id}`` (and are reserved ids), so they are never read as ids.
Bad bodies and parameters answer 422 naming the field; unknown ids 404; taken ids 409.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Query, status

from servicegrid import __version__
from servicegrid.apps._http import Page, add_health_route, install_error_handlers
from servicegrid.apps.questions.schemas import (
    ID_PATTERN,
    ChangesAnswer,
    ChangesParams,
    ListParams,
    Question,
    QuestionCreate,
    QuestionDeleted,
    QuestionUpdate,
    SearchAnswer,
    SearchParams,
)
from servicegrid.apps.questions.store import QuestionStore
from servicegrid.settings import Settings

__all__ = ["create_app"]

QuestionId = Annotated[str, Path(pattern=ID_PATTERN, description="the question's id")]


def create_app(settings: Settings, *, store: QuestionStore | None = None) -> FastAPI:
    """The app over ``store``; without one it opens (and closes) its own from ``settings``."""
    owned = store is None
    questions = QuestionStore.from_settings(settings) if store is None else store

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owned:
            await questions.open()
        try:
            yield
        finally:
            if owned:
                await questions.aclose()

    app = FastAPI(
        title="servicegrid questions",
        description="Questions: CRUD, listing, keyword search and a change feed (seed 002).",
        version=__version__,
        lifespan=lifespan,
    )
    install_error_handlers(app)

    async def check() -> dict[str, Any]:
        await questions.ping()
        return {"database": questions.backend}

    add_health_route(app, "questions", check)

    @app.post(
        "/questions",
        status_code=status.HTTP_201_CREATED,
        response_model=Question,
        tags=["questions"],
        summary="Ask a question",
    )
    async def create_question(body: Annotated[QuestionCreate, Body()]) -> Question:
        return await questions.create(body)

    @app.get(
        "/questions",
        response_model=Page[Question],
        tags=["questions"],
        summary="List questions, oldest first",
    )
    async def list_questions(params: Annotated[ListParams, Query()]) -> Page[Question]:
        items, total = await questions.list(
            user_id=params.user_id, tag=params.tag, page=params.page, per_page=params.per_page
        )
        return Page[Question](items=items, total=total, page=params.page, per_page=params.per_page)

    @app.get(
        "/questions/search",
        response_model=SearchAnswer,
        tags=["questions"],
        summary="Keyword search over titles, bodies and tags, best first",
    )
    async def search_questions(params: Annotated[SearchParams, Query()]) -> SearchAnswer:
        items, total = await questions.search(params.q, user_id=params.user_id, limit=params.limit)
        return SearchAnswer(query=params.q, items=items, total=total)

    @app.get(
        "/questions/changes",
        response_model=ChangesAnswer,
        tags=["questions"],
        summary="The change feed: what was created, updated and deleted, in order",
    )
    async def question_changes(params: Annotated[ChangesParams, Query()]) -> ChangesAnswer:
        changes, next_after, has_more = await questions.changes(
            after=params.after, limit=params.limit
        )
        return ChangesAnswer(changes=changes, next_after=next_after, has_more=has_more)

    @app.get(
        "/questions/{question_id}",
        response_model=Question,
        tags=["questions"],
        summary="One question",
    )
    async def get_question(question_id: QuestionId) -> Question:
        return await questions.get(question_id)

    @app.patch(
        "/questions/{question_id}",
        response_model=Question,
        tags=["questions"],
        summary="Change a question's title, body or tags",
    )
    async def update_question(
        question_id: QuestionId, body: Annotated[QuestionUpdate, Body()]
    ) -> Question:
        return await questions.update(question_id, body)

    @app.delete(
        "/questions/{question_id}",
        response_model=QuestionDeleted,
        tags=["questions"],
        summary="Delete a question",
    )
    async def delete_question(question_id: QuestionId) -> QuestionDeleted:
        question = await questions.delete(question_id)
        return QuestionDeleted(id=question.id)

    return app
