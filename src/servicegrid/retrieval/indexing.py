"""Putting questions and documents into the index, and keeping questions in step.

.. code-block:: python

    indexer = Indexer(index, retriever)
    await indexer.index_user_questions("user-123", questions)   # idempotent
    await indexer.catch_up(questions)          # apply the question service's change feed
    await indexer.index_document("report.pdf", pdf_bytes, documents)

Once a user's questions are indexed, the question service's change feed keeps them in
step: :meth:`Indexer.catch_up` reads the feed from the cursor it keeps in the index and
updates, adds or removes the questions of indexed users. Chunks are embedded when the
embedding service answers; without it they are indexed for BM25 alone
(``has_dense`` false), and indexing them again later adds their vectors.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from servicegrid.clients.documents import DoclingVLMClient
from servicegrid.errors import ServiceError, ServiceUnavailableError
from servicegrid.proto import docling_vlm_service_pb2
from servicegrid.retrieval.chunks import TAGS_PREFIX, Chunk
from servicegrid.retrieval.retriever import EMBEDDING, HybridRetriever, ServiceUse
from servicegrid.retrieval.text import chunk_text

__all__ = ["FEED_STATE", "Indexed", "Indexer", "QuestionSource"]

FEED_STATE: Final = "question-feed"
"""The index's state key for the change feed: ``{"after": seq, "users": [user ids]}``."""

_PAGE: Final = 100
_FEED_PAGE: Final = 500


class QuestionSource(Protocol):
    """What indexing needs of the question service; its REST and gRPC clients both fit."""

    async def list_questions(
        self,
        *,
        user_id: str | None = None,
        tag: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> dict[str, Any]: ...

    async def list_changes(self, after: int = 0, limit: int = 100) -> dict[str, Any]: ...


@dataclass(slots=True)
class Indexed:
    """What one indexing call did: items (questions, documents) and chunks written or removed."""

    items: int = 0
    chunks: int = 0
    removed: int = 0
    dense: bool = True
    uses: list[ServiceUse] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "chunks": self.chunks,
            "removed": self.removed,
            "dense": self.dense,
            "services_used": [
                {"service": use.service, "status": use.status, "reason": use.reason}
                for use in self.uses
            ],
        }


def question_chunks(question: dict[str, Any]) -> list[Chunk]:
    """A question's chunks: its title, body and tags, ``question:<id>:<n>``."""
    title = str(question.get("title", ""))
    tags = [str(tag) for tag in question.get("tags", ())]
    text = "\n\n".join(part for part in (title, str(question.get("body", ""))) if part)
    if tags:
        text += f"\n\n{TAGS_PREFIX}" + ", ".join(tags)
    return [
        Chunk(
            id=f"question:{question['id']}:{number}",
            source="question",
            ref=str(question["id"]),
            text=piece,
            title=title,
            user_id=str(question["user_id"]),
            extra={"tags": tags},
        )
        for number, piece in enumerate(chunk_text(text))
    ]


def document_chunks(
    file_name: str, result: docling_vlm_service_pb2.DocTagsResult, *, user_id: str | None
) -> list[Chunk]:
    """A converted PDF's chunks, page by page: ``document:<checksum>:<page>:<n>``."""
    digest = result.metadata.checksum or hashlib.sha256(file_name.encode()).hexdigest()
    pages: dict[int, list[str]] = {}
    for paragraph in result.document.paragraphs:
        if paragraph.text.strip():
            pages.setdefault(max(paragraph.page_number, 1), []).append(paragraph.text)
    title = result.document.title or file_name
    return [
        Chunk(
            id=f"document:{digest[:32]}:{page}:{number}",
            source="document",
            ref=file_name,
            text=piece,
            title=title,
            page=page,
            user_id=user_id,
            extra={"checksum": digest},
        )
        for page, texts in sorted(pages.items())
        for number, piece in enumerate(chunk_text("\n\n".join(texts)))
    ]


class Indexer:
    """Writes chunks into ``retriever.index`` with their BM25 and (when it can) dense vectors.

    One indexing or catch-up at a time per indexer: the feed cursor is read and
    written around each.
    """

    def __init__(self, retriever: HybridRetriever) -> None:
        self.retriever = retriever
        self.index = retriever.index
        self._lock = asyncio.Lock()

    async def index_user_questions(self, user_id: str, source: QuestionSource) -> Indexed:
        """Index every question of ``user_id`` and follow them through the feed from now on.

        Raises the question service's ServiceError when it cannot be read.
        """
        async with self._lock:
            await self._catch_up(source)  # the cursor first: no change is missed meanwhile
            done = Indexed()
            page = 1
            while True:
                answer = await source.list_questions(user_id=user_id, page=page, per_page=_PAGE)
                items = list(answer.get("items", ()))
                for question in items:
                    await self.index_chunks(question_chunks(question), done)
                    done.items += 1
                if page * _PAGE >= int(answer.get("total", 0)) or not items:
                    break
                page += 1
            state = await self._state()
            if user_id not in state["users"]:
                state["users"].append(user_id)
                await self.index.set_state(FEED_STATE, state)
            return done

    async def catch_up(self, source: QuestionSource) -> Indexed:
        """Apply the changes the feed holds past the cursor to the indexed users' questions."""
        async with self._lock:
            return await self._catch_up(source)

    async def indexed_users(self) -> list[str]:
        return list((await self._state())["users"])

    async def index_document(
        self,
        file_name: str,
        data: bytes,
        documents: DoclingVLMClient,
        *,
        user_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - sent as the RPC's own deadline
    ) -> Indexed:
        """Convert the PDF through the document service and index its paragraphs, page by
        page (visible to ``user_id`` only, or to every user). Raises its ServiceError."""
        response = await documents.process_pdf(data, file_name, timeout=timeout)
        chunks = document_chunks(file_name, response.result, user_id=user_id)
        done = Indexed(items=1)
        async with self._lock:
            await self.index_chunks(chunks, done)
        return done

    async def _state(self) -> dict[str, Any]:
        state = await self.index.get_state(FEED_STATE)
        if state is None:
            return {"after": 0, "users": []}
        return {"after": int(state.get("after", 0)), "users": list(state.get("users", []))}

    async def _catch_up(self, source: QuestionSource) -> Indexed:
        state = await self._state()
        users = set(state["users"])
        done = Indexed()
        after = state["after"]
        while True:
            page = await source.list_changes(after=after, limit=_FEED_PAGE)
            for change in page.get("changes", ()):
                question = change["question"]
                if question.get("user_id") not in users:
                    continue
                if change["kind"] == "deleted":
                    done.removed += await self._remove(str(question["id"]))
                else:
                    await self.index_chunks(question_chunks(question), done)
                done.items += 1
            after = int(page.get("next_after", after))
            if not page.get("has_more"):
                break
        if after != state["after"]:
            await self.index.set_state(FEED_STATE, {**state, "after": after})
        return done

    async def _remove(self, question_id: str) -> int:
        """Delete a question's chunks; how many there were (under the lock, nothing races)."""
        chunks = await self.index.count(source="question", ref=question_id)
        await self.index.delete(source="question", ref=question_id)
        return chunks

    async def index_chunks(self, chunks: Sequence[Chunk], done: Indexed) -> None:
        """Upsert ``chunks`` (dropping their items' chunks that are gone), embedded when the
        embedding service answers, and add what was done to ``done``.

        The write every indexing call makes, for chunks made elsewhere; the caller keeps
        to one write at a time per item. Raises ServiceUnavailableError when the index
        does not exist yet and the embedding service, which gives its vector size, is down.
        """
        if not chunks:
            return
        dense: list[list[float]] | None = None
        try:
            dense = await self.retriever.embed([chunk.text for chunk in chunks])
        except ServiceError as error:
            done.dense = False
            if not any(use.service == EMBEDDING for use in done.uses):
                done.uses.append(
                    ServiceUse(EMBEDDING, "failed", f"indexed for BM25 alone: {error.message}")
                )
        if self.index.dimension is None:
            if dense is None:
                raise ServiceUnavailableError(
                    "the index does not exist yet and the embedding service, which gives its "
                    "vector size, cannot be reached",
                    service=EMBEDDING,
                )
            await self.index.ensure_collection(len(dense[0]))
        sparse = [self.retriever.encoder.document(chunk.text) for chunk in chunks]
        await self.index.upsert(chunks, sparse=sparse, dense=dense)
        refs = {chunk.ref for chunk in chunks}
        for ref in refs:
            keep = [chunk.id for chunk in chunks if chunk.ref == ref]
            await self.index.delete(source=chunks[0].source, ref=ref, keep=keep)
        done.chunks += len(chunks)
        if dense is not None and not any(use.service == EMBEDDING for use in done.uses):
            done.uses.append(ServiceUse(EMBEDDING, "used"))
