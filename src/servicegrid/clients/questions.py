"""Seed 002's question service clients: ``QuestionServiceClient`` (REST) and
``QuestionServiceGRPCClient``.

.. code-block:: python

    async with QuestionServiceClient() as client:          # discovery:///question-service
        mine = await client.get_user_questions("user-123")
        found = await client.search_questions("vector database", limit=5)
        feed = await client.list_changes(after=0)

Both have the same methods and answer with the same dicts, the REST API's JSON:
a question is ``{"id", "user_id", "title", "body", "tags", "created_at",
"updated_at"}``; a search ``{"query", "items": [{"question", "score"}], "total"}``;
the change feed ``{"changes": [{"seq", "kind", "question", "at"}], "next_after",
"has_more"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from servicegrid.clients.app_grpc import AppGrpcClient
from servicegrid.clients.app_rest import AppRestClient, message_dict
from servicegrid.proto import common_pb2, question_service_pb2, question_service_pb2_grpc

__all__ = ["QuestionServiceClient", "QuestionServiceGRPCClient"]

_pb = question_service_pb2


def _changes(title: str | None, body: str | None, tags: Sequence[str] | None) -> dict[str, Any]:
    """The fields an update sets: those given (None: unchanged)."""
    given = {"title": title, "body": body}
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if tags is not None:
        changes["tags"] = list(tags)
    return changes


class QuestionServiceClient(AppRestClient):
    """The question service over REST (``/questions``); every method raises a ServiceError."""

    catalogue_name = "questions"

    async def create_question(
        self,
        user_id: str,
        title: str,
        body: str = "",
        tags: Sequence[str] = (),
        *,
        question_id: str | None = None,
    ) -> dict[str, Any]:
        """Ask a question; without ``question_id`` the service picks one (``q-<12 hex>``)."""
        payload: dict[str, Any] = {
            "user_id": user_id,
            "title": title,
            "body": body,
            "tags": list(tags),
        }
        if question_id is not None:
            payload["id"] = question_id
        result: dict[str, Any] = await self._json("POST", "/questions", body=payload)
        return result

    async def get_question(self, question_id: str) -> dict[str, Any]:
        """The question ``question_id``; ResourceNotFoundError if there is none."""
        path = f"/questions/{self._id('question_id', question_id)}"
        result: dict[str, Any] = await self._json("GET", path)
        return result

    async def update_question(
        self,
        question_id: str,
        *,
        title: str | None = None,
        body: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Change the fields given (None: unchanged); the question as it is now."""
        path = f"/questions/{self._id('question_id', question_id)}"
        result: dict[str, Any] = await self._json("PATCH", path, body=_changes(title, body, tags))
        return result

    async def delete_question(self, question_id: str) -> dict[str, Any]:
        """Delete the question: ``{"id", "deleted": True}``."""
        path = f"/questions/{self._id('question_id', question_id)}"
        result: dict[str, Any] = await self._json("DELETE", path)
        return result

    async def list_questions(
        self,
        *,
        user_id: str | None = None,
        tag: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> dict[str, Any]:
        """One page of questions, optionally one user's or one tag's, in creation order."""
        params = {"user_id": user_id, "tag": tag, "page": page, "per_page": per_page}
        result: dict[str, Any] = await self._json("GET", "/questions", params=params)
        return result

    async def get_user_questions(
        self, user_id: str, *, page: int = 1, per_page: int = 20
    ) -> dict[str, Any]:
        """One page of the questions ``user_id`` asked."""
        self._id("user_id", user_id)
        return await self.list_questions(user_id=user_id, page=page, per_page=per_page)

    async def search_questions(
        self, q: str, *, user_id: str | None = None, limit: int = 10
    ) -> dict[str, Any]:
        """Keyword search over titles, bodies and tags, best first."""
        params = {"q": q, "user_id": user_id, "limit": limit}
        result: dict[str, Any] = await self._json("GET", "/questions/search", params=params)
        return result

    async def list_changes(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """The change feed after seq ``after``: pass ``next_after`` back to read on."""
        params = {"after": after, "limit": limit}
        result: dict[str, Any] = await self._json("GET", "/questions/changes", params=params)
        return result


class QuestionServiceGRPCClient(AppGrpcClient):
    """The question service over gRPC (``servicegrid.v1.QuestionService``), answering as the
    REST client. Every method raises a ServiceError that is also a ``grpc.RpcError``."""

    catalogue_name = "questions"
    grpc_service_name = _pb.DESCRIPTOR.services_by_name["QuestionService"].full_name
    stub_class = question_service_pb2_grpc.QuestionServiceStub

    async def create_question(
        self,
        user_id: str,
        title: str,
        body: str = "",
        tags: Sequence[str] = (),
        *,
        question_id: str | None = None,
    ) -> dict[str, Any]:
        """Ask a question; without ``question_id`` the service picks one (``q-<12 hex>``)."""
        request = _pb.CreateQuestionRequest(
            id=question_id or "", user_id=user_id, title=title, body=body, tags=list(tags)
        )
        return message_dict(await self._rpc("CreateQuestion", request, idempotent=False))

    async def get_question(self, question_id: str) -> dict[str, Any]:
        """The question ``question_id``; ResourceNotFoundError if there is none."""
        request = _pb.GetQuestionRequest(id=self._id("question_id", question_id))
        return message_dict(await self._rpc("GetQuestion", request))

    async def update_question(
        self,
        question_id: str,
        *,
        title: str | None = None,
        body: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Change the fields given (None: unchanged); the question as it is now."""
        request = _pb.UpdateQuestionRequest(
            id=self._id("question_id", question_id), **_changes(title, body, None)
        )
        if tags is not None:
            request.tags.CopyFrom(common_pb2.StringList(values=list(tags)))
        return message_dict(await self._rpc("UpdateQuestion", request, idempotent=False))

    async def delete_question(self, question_id: str) -> dict[str, Any]:
        """Delete the question: ``{"id", "deleted": True}``."""
        request = _pb.DeleteQuestionRequest(id=self._id("question_id", question_id))
        return message_dict(await self._rpc("DeleteQuestion", request))

    async def list_questions(
        self,
        *,
        user_id: str | None = None,
        tag: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> dict[str, Any]:
        """One page of questions, optionally one user's or one tag's, in creation order."""
        request = _pb.ListQuestionsRequest(
            user_id=user_id or "", tag=tag or "", page=page, per_page=per_page
        )
        return message_dict(await self._rpc("ListQuestions", request))

    async def get_user_questions(
        self, user_id: str, *, page: int = 1, per_page: int = 20
    ) -> dict[str, Any]:
        """One page of the questions ``user_id`` asked."""
        self._id("user_id", user_id)
        return await self.list_questions(user_id=user_id, page=page, per_page=per_page)

    async def search_questions(
        self, q: str, *, user_id: str | None = None, limit: int = 10
    ) -> dict[str, Any]:
        """Keyword search over titles, bodies and tags, best first."""
        request = _pb.SearchQuestionsRequest(q=q, user_id=user_id or "", limit=limit)
        return message_dict(await self._rpc("SearchQuestions", request))

    async def list_changes(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """The change feed after seq ``after``: pass ``next_after`` back to read on."""
        request = _pb.ListQuestionChangesRequest(after=after, limit=limit)
        return message_dict(await self._rpc("ListQuestionChanges", request))
