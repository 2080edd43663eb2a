"""RerankingClient against a real grpc.aio server: seed 000's usage and validation."""

from __future__ import annotations

from typing import Any

import pytest

from servicegrid.clients.reranking import RerankingClient
from servicegrid.errors import ValidationError
from servicegrid.proto import reranking_service_pb2
from tests.grpc_clients.servers import ClientFactory, GrpcTestServer

RERANKER = "cross-encoder/ms-marco-MiniLM-L-6-v2"


async def test_seed_usage_runs_as_written(grpc_server: GrpcTestServer) -> None:
    reranking_client = RerankingClient(service_url=grpc_server.target)
    try:
        # Rerank documents
        query = "diabetes treatment"
        documents = [
            "Metformin is commonly used to treat type 2 diabetes",
            "Insulin therapy is essential for type 1 diabetes",
            "Exercise and diet are important for diabetes management",
        ]
        results = await reranking_client.rerank_batch(
            query=query,
            documents=documents,
            config=reranking_service_pb2.RerankingConfig(
                model_name=RERANKER, batch_size=16, timeout_seconds=30.0, return_documents=True
            ),
        )
        assert len(results.results) == 3
        scores = [result.score for result in results.results]
        assert scores == sorted(scores, reverse=True)
        assert sorted(result.document_index for result in results.results) == [0, 1, 2]
        for result in results.results:
            assert result.document == documents[result.document_index]
            assert f"{result.score:.4f}"
        assert results.metadata.model_name == RERANKER

        # Rerank multiple batches
        batch_requests = [
            reranking_service_pb2.RerankBatchRequest(
                query="diabetes treatment", documents=["doc1", "doc2", "doc3"]
            ),
            reranking_service_pb2.RerankBatchRequest(
                query="hypertension management", documents=["doc4", "doc5", "doc6"]
            ),
        ]
        batch_response = await reranking_client.rerank_multiple_batches(batch_requests)
        assert len(batch_response.responses) == 2
        assert all(len(response.results) == 3 for response in batch_response.responses)

        # List available models
        models = await reranking_client.list_models()
        assert [(m.name, m.max_sequence_length, m.available) for m in models.models] == [
            (RERANKER, 512, True)
        ]
    finally:
        await reranking_client.aclose()


async def test_documents_are_left_out_unless_asked_for(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(RerankingClient, grpc_server.target)
    results = await client.rerank_batch("red apple", ["green pear", "red apple pie"])
    assert [r.document_index for r in results.results] == [1, 0]
    assert all(r.document == "" for r in results.results)


async def test_multiple_batches_accepts_the_request_message(
    grpc_server: GrpcTestServer, make_client: ClientFactory
) -> None:
    client = make_client(RerankingClient, grpc_server.target)
    request = reranking_service_pb2.RerankMultipleBatchesRequest(
        requests=[reranking_service_pb2.RerankBatchRequest(query="q", documents=["a", "b"])]
    )
    response = await client.rerank_multiple_batches(request)
    assert len(response.responses) == 1
    assert grpc_server.control.calls["RerankMultipleBatches"] == 1


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", ["doc"]), "query"),
        (("   ", ["doc"]), "query"),
        ((None, ["doc"]), "query"),
        (("q", "one document"), "documents"),
        (("q", []), "documents"),
        (("q", ["ok", b"bytes"]), "documents[1]"),
        (("q", ["ok"], {"return_documents": True}), "config"),
    ],
)
async def test_bad_input_is_a_validation_error_before_any_rpc(
    grpc_server: GrpcTestServer, make_client: ClientFactory, args: tuple[Any, ...], field: str
) -> None:
    client = make_client(RerankingClient, grpc_server.target)
    with pytest.raises(ValidationError) as caught:
        await client.rerank_batch(*args)
    assert caught.value.validation_errors[0]["field"] == field
    assert grpc_server.control.total == 0


@pytest.mark.parametrize(
    ("requests", "field"),
    [
        ([], "requests"),
        (reranking_service_pb2.RerankMultipleBatchesRequest(), "requests"),
        ({"query": "q"}, "requests"),
        ([reranking_service_pb2.RerankBatchRequest(documents=["a"])], "requests[0].query"),
        ([reranking_service_pb2.RerankBatchRequest(query="q")], "requests[0].documents"),
    ],
)
async def test_bad_batches_are_validation_errors_before_any_rpc(
    grpc_server: GrpcTestServer, make_client: ClientFactory, requests: Any, field: str
) -> None:
    client = make_client(RerankingClient, grpc_server.target)
    with pytest.raises(ValidationError) as caught:
        await client.rerank_multiple_batches(requests)
    assert caught.value.validation_errors[0]["field"] == field
    assert grpc_server.control.total == 0


async def test_stats_and_health(grpc_server: GrpcTestServer, make_client: ClientFactory) -> None:
    client = make_client(RerankingClient, grpc_server.target)
    stats = await client.get_stats()
    assert stats["total_items"] == 7
    assert stats["total_requests"] == 1
    report = await client.health_check()
    assert report["status"] == "healthy"
    assert report["service"] == "reranking"
