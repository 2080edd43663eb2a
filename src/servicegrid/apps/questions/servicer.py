"""The QuestionService servicer: the REST operations over gRPC, on the same store and checks.

Each request becomes the dict its REST twin would carry and is checked by the same
pydantic model (:func:`~servicegrid.apps._validation.validated`): a bad one is
refused with INVALID_ARGUMENT naming the field (``title``, ``tags[2]``, ``per_page``).
Zero numbers and empty filters mean the REST defaults. Errors are raised as
servicegrid errors; the server's error interceptor turns them into statuses
(NOT_FOUND, ALREADY_EXISTS, ...).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from servicegrid.apps._http import DEFAULT_PER_PAGE
from servicegrid.apps._validation import validated
from servicegrid.apps.questions.schemas import (
    DEFAULT_CHANGES_LIMIT,
    DEFAULT_SEARCH_LIMIT,
    ChangesParams,
    ListParams,
    Question,
    QuestionChange,
    QuestionCreate,
    QuestionHit,
    QuestionRef,
    QuestionUpdate,
    SearchParams,
)
from servicegrid.apps.questions.store import QuestionStore
from servicegrid.proto import question_service_pb2, question_service_pb2_grpc

__all__ = ["QuestionServicer"]

_pb = question_service_pb2
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class QuestionServicer(question_service_pb2_grpc.QuestionServiceServicer):
    """Serves QuestionService from ``store`` (opened and closed by its owner)."""

    def __init__(self, store: QuestionStore) -> None:
        self._store = store

    async def CreateQuestion(
        self, request: question_service_pb2.CreateQuestionRequest, context: Context
    ) -> question_service_pb2.Question:
        data = validated(
            QuestionCreate,
            {
                "id": request.id or None,
                "user_id": request.user_id,
                "title": request.title,
                "body": request.body,
                "tags": list(request.tags),
            },
        )
        return _question(await self._store.create(data))

    async def GetQuestion(
        self, request: question_service_pb2.GetQuestionRequest, context: Context
    ) -> question_service_pb2.Question:
        return _question(await self._store.get(_checked_id(request.id)))

    async def UpdateQuestion(
        self, request: question_service_pb2.UpdateQuestionRequest, context: Context
    ) -> question_service_pb2.Question:
        question_id = _checked_id(request.id)
        fields: dict[str, Any] = {}
        if request.HasField("title"):
            fields["title"] = request.title
        if request.HasField("body"):
            fields["body"] = request.body
        if request.HasField("tags"):
            fields["tags"] = list(request.tags.values)
        changes = validated(QuestionUpdate, fields)
        return _question(await self._store.update(question_id, changes))

    async def DeleteQuestion(
        self, request: question_service_pb2.DeleteQuestionRequest, context: Context
    ) -> question_service_pb2.DeleteQuestionResponse:
        question = await self._store.delete(_checked_id(request.id))
        return _pb.DeleteQuestionResponse(id=question.id, deleted=True)

    async def ListQuestions(
        self, request: question_service_pb2.ListQuestionsRequest, context: Context
    ) -> question_service_pb2.ListQuestionsResponse:
        params = validated(
            ListParams,
            {
                "user_id": request.user_id or None,
                "tag": request.tag or None,
                "page": request.page or 1,
                "per_page": request.per_page or DEFAULT_PER_PAGE,
            },
        )
        items, total = await self._store.list(
            user_id=params.user_id, tag=params.tag, page=params.page, per_page=params.per_page
        )
        return _pb.ListQuestionsResponse(
            items=[_question(item) for item in items],
            total=total,
            page=params.page,
            per_page=params.per_page,
        )

    async def SearchQuestions(
        self, request: question_service_pb2.SearchQuestionsRequest, context: Context
    ) -> question_service_pb2.SearchQuestionsResponse:
        params = validated(
            SearchParams,
            {
                "q": request.q,
                "user_id": request.user_id or None,
                "limit": request.limit or DEFAULT_SEARCH_LIMIT,
            },
        )
        hits, total = await self._store.search(params.q, user_id=params.user_id, limit=params.limit)
        return _pb.SearchQuestionsResponse(
            query=params.q, items=[_hit(hit) for hit in hits], total=total
        )

    async def ListQuestionChanges(
        self, request: question_service_pb2.ListQuestionChangesRequest, context: Context
    ) -> question_service_pb2.ListQuestionChangesResponse:
        params = validated(
            ChangesParams,
            {"after": request.after, "limit": request.limit or DEFAULT_CHANGES_LIMIT},
        )
        changes, next_after, has_more = await self._store.changes(
            after=params.after, limit=params.limit
        )
        return _pb.ListQuestionChangesResponse(
            changes=[_change(change) for change in changes],
            next_after=next_after,
            has_more=has_more,
        )


def _checked_id(question_id: str) -> str:
    # the REST path's check: an id no question can have is a bad argument, not "not found"
    return validated(QuestionRef, {"id": question_id}).id


def _question(question: Question) -> question_service_pb2.Question:
    return _pb.Question(**question.model_dump())


def _hit(hit: QuestionHit) -> question_service_pb2.QuestionHit:
    return _pb.QuestionHit(question=_question(hit.question), score=hit.score)


def _change(change: QuestionChange) -> question_service_pb2.QuestionChange:
    return _pb.QuestionChange(
        seq=change.seq, kind=change.kind, question=_question(change.question), at=change.at
    )
