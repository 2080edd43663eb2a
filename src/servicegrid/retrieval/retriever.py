"""``HybridRetriever``: BM25 and dense search in one index, fused, then reranked.

.. code-block:: python

    retriever = HybridRetriever(index, embedding=embedding_client, reranking=reranking_client)
    found = await retriever.search("what is a vector database?", scope=Scope(...), limit=5)
    found.hits, found.uses          # the chunks, best first; which services helped or failed

Each step that needs a service degrades instead of failing the search: the
embedding service down leaves BM25 alone, the reranking service down leaves the
fused ranking. ``found.uses`` says what happened, for the caller to report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.reranking import RerankingClient
from servicegrid.errors import ServiceError
from servicegrid.proto import embedding_service_pb2, reranking_service_pb2
from servicegrid.retrieval.chunks import Hit
from servicegrid.retrieval.fusion import DEFAULT_FUSION, Fusion
from servicegrid.retrieval.index import HybridIndex, Scope
from servicegrid.retrieval.sparse import Bm25Encoder

__all__ = ["EMBEDDING", "RERANKING", "HybridRetriever", "Mode", "Retrieval", "ServiceUse"]

EMBEDDING: Final = "embedding-service"
RERANKING: Final = "reranking-service"

Mode = Literal["bm25", "dense", "hybrid", "hybrid+rerank"]
"""Which retrievers run: BM25 alone, dense alone, both fused, both fused then reranked."""


@dataclass(frozen=True, slots=True)
class ServiceUse:
    """What one service did for an answer: ``used``, ``skipped`` (not needed or not
    configured) or ``failed`` (and what was done instead, in ``reason``)."""

    service: str
    status: Literal["used", "skipped", "failed"]
    reason: str = ""


@dataclass(slots=True)
class Retrieval:
    """The hits, best first, and what each service did for them."""

    hits: list[Hit] = field(default_factory=list)
    uses: list[ServiceUse] = field(default_factory=list)


def _why(error: ServiceError) -> str:
    return f"{type(error).__name__}: {error.message}"[:300]


class HybridRetriever:
    """Search ``index`` as ``mode`` says; see the module docstring.

    ``candidates`` is how many hits each retriever brings to the fusion and the
    reranker; ``fusion`` how the two rankings become one (reciprocal rank fusion
    by default); ``embedding_model`` and ``rerank_model`` name the models ("" for
    the services' defaults: a cross-encoder configured on the reranking service is
    chosen by its name here). ``timeout`` (seconds) bounds each service call.
    """

    def __init__(
        self,
        index: HybridIndex,
        *,
        embedding: EmbeddingClient,
        reranking: RerankingClient | None,
        encoder: Bm25Encoder | None = None,
        candidates: int = 20,
        fusion: Fusion = DEFAULT_FUSION,
        embedding_model: str = "",
        rerank_model: str = "",
        timeout: float = 10.0,
    ) -> None:
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        self.index = index
        self.embedding = embedding
        self.reranking = reranking
        self.encoder = encoder or Bm25Encoder()
        self.candidates = candidates
        self.fusion = fusion
        self.embedding_model = embedding_model
        self.rerank_model = rerank_model
        self.timeout = timeout

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalised vector per text from the embedding service; raises a ServiceError."""
        config = embedding_service_pb2.EmbeddingConfig(normalize=True)
        response = await self.embedding.generate_embeddings(
            list(texts), self.embedding_model, config, timeout=self.timeout
        )
        return [list(result.values) for result in response.embeddings]

    async def search(
        self, query: str, *, scope: Scope, limit: int, mode: Mode = "hybrid+rerank"
    ) -> Retrieval:
        """The ``limit`` best chunks in ``scope`` for ``query``; never raises for a service
        that is down (see :class:`Retrieval`), only for the index itself."""
        found = Retrieval()
        bm25 = dense = None
        if mode != "dense":
            bm25 = await self.index.search_sparse(
                self.encoder.query(query), where=scope, limit=self.candidates
            )
        if mode != "bm25":
            dense = await self._dense(query, scope, found)
        hits = self._fuse(bm25, dense)
        if mode == "hybrid+rerank" and hits:
            hits = await self._rerank(query, hits, found)
        elif mode == "hybrid+rerank":
            found.uses.append(ServiceUse(RERANKING, "skipped", "nothing to rerank"))
        found.hits = hits[:limit]
        return found

    async def _dense(self, query: str, scope: Scope, found: Retrieval) -> list[Hit] | None:
        try:
            [vector] = await self.embed([query])
        except ServiceError as error:
            found.uses.append(ServiceUse(EMBEDDING, "failed", f"BM25 alone: {_why(error)}"))
            return None
        found.uses.append(ServiceUse(EMBEDDING, "used"))
        return await self.index.search_dense(vector, where=scope, limit=self.candidates)

    async def _rerank(self, query: str, hits: list[Hit], found: Retrieval) -> list[Hit]:
        if self.reranking is None:
            found.uses.append(ServiceUse(RERANKING, "skipped", "no reranking service"))
            return hits
        head = hits[: self.candidates]
        config = reranking_service_pb2.RerankingConfig(model_name=self.rerank_model)
        try:
            response = await self.reranking.rerank_batch(
                query, [hit.chunk.text for hit in head], config, timeout=self.timeout
            )
        except ServiceError as error:
            found.uses.append(ServiceUse(RERANKING, "failed", f"the fused ranking: {_why(error)}"))
            return hits
        found.uses.append(ServiceUse(RERANKING, "used"))
        reranked = [
            Hit(head[result.document_index].chunk, float(result.score))
            for result in response.results
            if 0 <= result.document_index < len(head)
        ]
        return reranked + hits[len(head) :]

    def _fuse(self, bm25: list[Hit] | None, dense: list[Hit] | None) -> list[Hit]:
        """One ranking as it is; both fused by :attr:`fusion` (its score as the score)."""
        if bm25 is None or dense is None:
            return bm25 or dense or []
        chunks = {hit.chunk.id: hit.chunk for hit in (*bm25, *dense)}
        fused = self.fusion.fuse(
            [(hit.chunk.id, hit.score) for hit in bm25],
            [(hit.chunk.id, hit.score) for hit in dense],
        )
        return [Hit(chunks[chunk_id], score) for chunk_id, score in fused]
