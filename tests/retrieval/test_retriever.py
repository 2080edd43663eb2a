"""HybridRetriever and Indexer on a real local Qdrant, with the model services' wire answers
given by MockTransports (their failures too): fusion, reranking by a named model, and each
degradation."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.reranking import RerankingClient
from servicegrid.errors import ServiceUnavailableError
from servicegrid.proto import embedding_service_pb2, reranking_service_pb2
from servicegrid.retrieval.index import HybridIndex, Scope
from servicegrid.retrieval.indexing import Indexed, Indexer, question_chunks
from servicegrid.retrieval.retriever import HybridRetriever
from servicegrid.retrieval.text import tokenise
from servicegrid.testing import set_testing
from servicegrid.transports.base import Call, Reply
from servicegrid.transports.mock import MockTransport

DIMENSION = 32
QUESTIONS = [
    {"id": "q-1", "user_id": "u-1", "title": "What is machine learning?", "body": "", "tags": []},
    {"id": "q-2", "user_id": "u-1", "title": "How do I bake sourdough bread?", "body": ""},
    {"id": "q-3", "user_id": "u-1", "title": "Which vector database fits retrieval?", "body": ""},
    {"id": "q-4", "user_id": "u-2", "title": "Machine learning for another user", "body": ""},
]


def bag_of_words(text: str) -> list[float]:
    """A stand-in embedding: hashed word counts, normalised (similar words, similar vectors)."""
    vector = [0.0] * DIMENSION
    for token in tokenise(text):
        vector[hashlib.blake2b(token.encode(), digest_size=2).digest()[0] % DIMENSION] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class Services:
    """The embedding and reranking services' answers, and whether each is down."""

    def __init__(self) -> None:
        self.embedding_down = False
        self.reranking_down = False
        self.rerank_models: list[str] = []

    def embed(self, call: Call) -> Reply:
        if self.embedding_down:
            raise ServiceUnavailableError("embedding is down", service="embedding")
        request = call.body
        results = [
            embedding_service_pb2.EmbeddingResult(values=bag_of_words(text), dimension=DIMENSION)
            for text in request.texts
        ]
        return Reply(body=embedding_service_pb2.GenerateEmbeddingsResponse(embeddings=results))

    def rerank(self, call: Call) -> Reply:
        if self.reranking_down:
            raise ServiceUnavailableError("reranking is down", service="reranking")
        request = call.body
        self.rerank_models.append(request.config.model_name)
        # the last candidate first: a reranker that disagrees with the fusion, visibly
        count = len(request.documents)
        results = [
            reranking_service_pb2.RerankingResult(document_index=index, score=float(index))
            for index in reversed(range(count))
        ]
        return Reply(body=reranking_service_pb2.RerankBatchResponse(results=results))


@pytest.fixture
def services() -> Iterator[Services]:
    with set_testing(True, attempts=1):
        yield Services()


async def built(tmp_path: Path, services: Services, **options: object) -> HybridRetriever:
    embedding = EmbeddingClient(
        service_url="embedding:1", transport=MockTransport(services.embed), registry=None
    )
    reranking = RerankingClient(
        service_url="reranking:1", transport=MockTransport(services.rerank), registry=None
    )
    index = HybridIndex(path=str(tmp_path / "qdrant"))
    await index.open()
    retriever = HybridRetriever(
        index,
        embedding=embedding,
        reranking=reranking,
        rerank_model="cross-encoder-x",
        **options,  # type: ignore[arg-type]
    )
    indexer = Indexer(retriever)
    for question in QUESTIONS:
        await indexer.index_chunks(question_chunks(question), Indexed())
    return retriever


SCOPE = Scope(sources=frozenset({"question"}), user_id="u-1")


async def test_hybrid_search_fuses_both_rankings_and_reranks_by_the_named_model(
    tmp_path: Path, services: Services
) -> None:
    retriever = await built(tmp_path, services)
    found = await retriever.search("machine learning", scope=SCOPE, limit=3, mode="hybrid")
    assert found.hits[0].chunk.ref == "q-1"
    assert {hit.chunk.user_id for hit in found.hits} == {"u-1"}  # never another user's
    reranked = await retriever.search("machine learning", scope=SCOPE, limit=3)
    assert services.rerank_models == ["cross-encoder-x"]
    assert [use.status for use in reranked.uses] == ["used", "used"]
    fused_ids = [hit.chunk.ref for hit in found.hits]
    assert [hit.chunk.ref for hit in reranked.hits] == list(reversed(fused_ids))
    await retriever.index.aclose()


async def test_the_embedding_service_down_leaves_bm25_alone(
    tmp_path: Path, services: Services
) -> None:
    retriever = await built(tmp_path, services)
    services.embedding_down = True
    found = await retriever.search("sourdough bread", scope=SCOPE, limit=2, mode="hybrid")
    assert found.hits[0].chunk.ref == "q-2"
    [use] = found.uses
    assert (use.service, use.status) == ("embedding-service", "failed")
    assert use.reason.startswith("BM25 alone")
    await retriever.index.aclose()


async def test_the_reranking_service_down_leaves_the_fused_ranking(
    tmp_path: Path, services: Services
) -> None:
    retriever = await built(tmp_path, services)
    fused = await retriever.search("vector database", scope=SCOPE, limit=3, mode="hybrid")
    services.reranking_down = True
    found = await retriever.search("vector database", scope=SCOPE, limit=3)
    assert [hit.chunk.id for hit in found.hits] == [hit.chunk.id for hit in fused.hits]
    assert found.uses[-1].service == "reranking-service"
    assert found.uses[-1].status == "failed"
    assert found.uses[-1].reason.startswith("the fused ranking")
    await retriever.index.aclose()


async def test_chunks_indexed_while_the_embedding_service_is_down_are_found_by_bm25(
    tmp_path: Path, services: Services
) -> None:
    retriever = await built(tmp_path, services)
    services.embedding_down = True
    late = {"id": "q-9", "user_id": "u-1", "title": "Tidal patterns of the ocean", "body": ""}
    done = Indexed()
    await Indexer(retriever).index_chunks(question_chunks(late), done)
    assert done.dense is False
    found = await retriever.search("ocean tides tidal", scope=SCOPE, limit=1, mode="bm25")
    assert found.hits[0].chunk.ref == "q-9"
    await retriever.index.aclose()
