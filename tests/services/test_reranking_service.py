"""The reranking service, in-process with the real MiniLM weights and a tiny cross-encoder built
here, called through RerankingClient."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the models extra (torch) is not installed")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import pytest_asyncio  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]  # noqa: E402
from sentence_transformers import CrossEncoder  # noqa: E402

from servicegrid.clients import RerankingClient  # noqa: E402
from servicegrid.errors import ServiceError, ValidationError  # noqa: E402
from servicegrid.models import MINILM_NAME, BiEncoderReranker  # noqa: E402
from servicegrid.proto import (  # noqa: E402
    common_pb2,
    reranking_service_pb2,
    reranking_service_pb2_grpc,
)
from servicegrid.services.reranking.app import RerankingApp, build_reranking_service  # noqa: E402
from servicegrid.settings import load_settings  # noqa: E402
from tests.support.served import served  # noqa: E402
from tests.support.tiny_models import build_tiny_cross_encoder  # noqa: E402

_pb = reranking_service_pb2
SERVICE = "servicegrid.v1.RerankingService"
MAX_ITEMS = 100

QUERY = "diabetes treatment"
RELEVANT = "Metformin is commonly used to treat type 2 diabetes"
UNRELATED = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris",
    "A guide to replacing the inner tube of a bicycle tire",
    "Sourdough bread needs a starter that is fed with flour and water",
]
# relevant in the middle: the service must move it to the top
DOCUMENTS = [UNRELATED[0], UNRELATED[1], RELEVANT, UNRELATED[2]]

CROSS_DOCUMENTS = [
    "short",
    "a somewhat longer document about insulin and glucose",
    "Metformin is commonly used to treat type 2 diabetes in adults",
    "bicycles",
    "Exercise and diet are important for diabetes management and weight control",
]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a wide initialisation, so the random scores spread out and their order is clear
    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    return build_tiny_cross_encoder(folder, initializer_range=0.5)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def app(tiny_cross_encoder: Path) -> AsyncIterator[RerankingApp]:
    settings = load_settings(
        device="cpu",
        reranking_models={"tiny": str(tiny_cross_encoder)},
        max_items_per_request=MAX_ITEMS,
        max_text_chars=50_000,
    )
    async with served(build_reranking_service, settings) as built:
        yield built


@pytest_asyncio.fixture(loop_scope="module")
async def client(app: RerankingApp) -> AsyncIterator[RerankingClient]:
    async with RerankingClient(service_url=f"127.0.0.1:{app.running.port}", registry=None) as c:
        yield c


pytestmark = pytest.mark.asyncio(loop_scope="module")


def scores_of(response: reranking_service_pb2.RerankBatchResponse) -> list[float]:
    return [result.score for result in response.results]


def assert_sorted(response: reranking_service_pb2.RerankBatchResponse, count: int) -> None:
    scores = scores_of(response)
    assert scores == sorted(scores, reverse=True)
    assert sorted(r.document_index for r in response.results) == list(range(count))


# ---- the seed's usage ---------------------------------------------------------------


async def test_seed_usage_ranks_the_relevant_document_first(
    app: RerankingApp, client: RerankingClient
) -> None:
    response = await client.rerank_batch(
        query=QUERY,
        documents=DOCUMENTS,
        config=_pb.RerankingConfig(
            model_name=MINILM_NAME, batch_size=16, timeout_seconds=30.0, return_documents=True
        ),
    )
    assert len(response.results) == len(DOCUMENTS)
    assert_sorted(response, len(DOCUMENTS))
    top = response.results[0]
    assert top.document_index == DOCUMENTS.index(RELEVANT)
    assert top.document == RELEVANT
    for result in response.results:
        assert result.document == DOCUMENTS[result.document_index]
    assert response.metadata.model_name == MINILM_NAME
    assert response.metadata.batch_size == 16
    assert response.metadata.processing_time_ms > 0
    assert response.metadata.total_requests >= 1


async def test_bi_encoder_scores_are_cosine_similarities_of_minilm_embeddings(
    app: RerankingApp, client: RerankingClient
) -> None:
    response = await client.rerank_batch(query=QUERY, documents=DOCUMENTS)
    reranker = app.servicer.models[MINILM_NAME].reranker
    assert isinstance(reranker, BiEncoderReranker)
    vectors = reranker.embedder.encode([QUERY, *DOCUMENTS], normalize=True)
    expected = vectors[1:] @ vectors[0]
    for result in response.results:
        assert result.score == pytest.approx(float(expected[result.document_index]), abs=1e-4)


async def test_documents_only_with_return_documents(client: RerankingClient) -> None:
    without = await client.rerank_batch(query=QUERY, documents=DOCUMENTS)
    assert_sorted(without, len(DOCUMENTS))
    assert all(result.document == "" for result in without.results)
    assert without.results[0].document_index == DOCUMENTS.index(RELEVANT)
    # the default model answers an empty model_name, with the default batch size
    assert without.metadata.model_name == MINILM_NAME
    assert without.metadata.batch_size == 32


async def test_rerank_multiple_batches_answers_in_order(client: RerankingClient) -> None:
    batch = [
        _pb.RerankBatchRequest(query=QUERY, documents=DOCUMENTS),
        _pb.RerankBatchRequest(
            query="hypertension management",
            documents=["doc4", "Lowering salt intake helps control high blood pressure", "doc6"],
            config=_pb.RerankingConfig(model_name="tiny", return_documents=True),
        ),
        _pb.RerankBatchRequest(query="bicycle repair", documents=UNRELATED),
    ]
    response = await client.rerank_multiple_batches(batch)
    assert len(response.responses) == 3
    first, second, third = response.responses
    assert first.results[0].document_index == DOCUMENTS.index(RELEVANT)
    assert first.metadata.model_name == MINILM_NAME
    assert second.metadata.model_name == "tiny"
    assert [r.document for r in second.results] == [
        batch[1].documents[r.document_index] for r in second.results
    ]
    assert third.results[0].document_index == UNRELATED.index(UNRELATED[1])
    for sub, one in zip(batch, response.responses, strict=True):
        assert_sorted(one, len(sub.documents))
    assert response.metadata.model_name == MINILM_NAME
    # the message form of the request is accepted too
    again = await client.rerank_multiple_batches(_pb.RerankMultipleBatchesRequest(requests=batch))
    assert len(again.responses) == 3


async def test_list_models_describes_each_model_honestly(client: RerankingClient) -> None:
    listed = await client.list_models()
    models = {m.name: m for m in listed.models}
    assert set(models) == {MINILM_NAME, "tiny"}
    bi, cross = models[MINILM_NAME], models["tiny"]
    assert bi.available
    assert cross.available
    assert "bi-encoder" in bi.description
    assert "not a cross-encoder" in bi.description
    assert "cross-encoder" in cross.description
    assert "bi-encoder" not in cross.description
    assert bi.max_sequence_length == 256
    assert cross.max_sequence_length > 0


# ---- the cross-encoder path -----------------------------------------------------------


async def test_cross_encoder_is_selectable_and_matches_cross_encoder_predict(
    app: RerankingApp, client: RerankingClient, tiny_cross_encoder: Path
) -> None:
    response = await client.rerank_batch(
        query=QUERY,
        documents=CROSS_DOCUMENTS,
        config=_pb.RerankingConfig(model_name="tiny", batch_size=2, return_documents=True),
    )
    assert response.metadata.model_name == "tiny"
    assert response.metadata.batch_size == 2
    assert_sorted(response, len(CROSS_DOCUMENTS))

    reference = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    expected = [float(s) for s in reference.predict([(QUERY, d) for d in CROSS_DOCUMENTS])]
    for result in response.results:
        assert result.score == pytest.approx(expected[result.document_index], abs=1e-5)
        assert result.document == CROSS_DOCUMENTS[result.document_index]
    # the same order as predict's scores sorted highest first, and they are far enough
    # apart for that order to mean something
    gaps = np.diff(sorted(expected))
    assert gaps.min() > 1e-4
    order = sorted(range(len(expected)), key=lambda i: -expected[i])
    assert [r.document_index for r in response.results] == order


async def test_many_documents_are_measured_and_scored(client: RerankingClient) -> None:
    documents = [f"document number {i} about something else" for i in range(60)]
    documents[41] = RELEVANT
    response = await client.rerank_batch(
        query=QUERY, documents=documents, config=_pb.RerankingConfig(batch_size=7)
    )
    assert_sorted(response, len(documents))
    assert response.results[0].document_index == 41


# ---- bad input ------------------------------------------------------------------------

BAD_INPUT: list[tuple[str, list[str], dict[str, Any] | None, str]] = [
    (QUERY, [], None, "documents"),
    (QUERY, ["ok", "   "], None, "documents[1]"),
    (QUERY, [""], None, "documents[0]"),
    ("", ["ok"], None, "query"),
    ("   ", ["ok"], None, "query"),
    ("q" * 60_000, ["ok"], None, "query"),
    (QUERY, ["ok"], {"model_name": "no-such-model"}, "config.model_name"),
    (QUERY, ["ok"], {"batch_size": 0}, "config.batch_size"),
    (QUERY, ["ok"], {"batch_size": -1}, "config.batch_size"),
    (QUERY, ["ok"], {"timeout_seconds": math.nan}, "config.timeout_seconds"),
    (QUERY, ["ok"], {"timeout_seconds": math.inf}, "config.timeout_seconds"),
    (QUERY, ["ok"], {"timeout_seconds": 0.0}, "config.timeout_seconds"),
    (QUERY, ["x" * 10_000_000], None, "documents[0]"),
    (QUERY, ["x"] * (MAX_ITEMS + 1), None, "documents"),
    (QUERY, ["x"] * 100_000, None, "documents"),
]


async def still_serving(app: RerankingApp) -> None:
    async with RerankingClient(
        service_url=f"127.0.0.1:{app.running.port}", registry=None
    ) as client:
        response = await client.rerank_batch(query=QUERY, documents=DOCUMENTS)
        assert response.results[0].document_index == DOCUMENTS.index(RELEVANT)


@pytest.mark.parametrize(("query", "documents", "config", "field"), BAD_INPUT)
async def test_bad_input_is_invalid_argument_naming_the_field(
    app: RerankingApp,
    query: str,
    documents: list[str],
    config: dict[str, Any] | None,
    field: str,
) -> None:
    """Straight over the wire, past the client's own checks: the service refuses it."""
    request = _pb.RerankBatchRequest(
        query=query,
        documents=documents,
        config=_pb.RerankingConfig(**config) if config else None,
    )
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.running.port}", options=options
    ) as channel:
        stub = reranking_service_pb2_grpc.RerankingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.RerankBatch(request)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (failure.value.details() or "").startswith(field + ":")
    await still_serving(app)


@pytest.mark.parametrize(("query", "documents", "config", "field"), BAD_INPUT)
async def test_bad_input_through_the_client_is_a_typed_validation_error(
    app: RerankingApp,
    client: RerankingClient,
    query: str,
    documents: list[str],
    config: dict[str, Any] | None,
    field: str,
) -> None:
    with pytest.raises(ValidationError) as failure:
        await client.rerank_batch(
            query=query,
            documents=documents,
            config=_pb.RerankingConfig(**config) if config else None,
        )
    assert isinstance(failure.value, ServiceError)
    # the client refuses an empty query or list itself, naming the same field
    assert field.split("[")[0] in str(failure.value)
    await still_serving(app)


@pytest.mark.parametrize(
    ("requests", "field"),
    [
        ([], "requests"),
        (
            [
                _pb.RerankBatchRequest(query=QUERY, documents=["ok"]),
                _pb.RerankBatchRequest(query=QUERY, documents=["ok", " "]),
            ],
            "requests[1].documents[1]",
        ),
        (
            [
                _pb.RerankBatchRequest(query=QUERY, documents=["ok"]),
                _pb.RerankBatchRequest(query="", documents=["ok"]),
            ],
            "requests[1].query",
        ),
        (
            [
                _pb.RerankBatchRequest(
                    query=QUERY,
                    documents=["ok"],
                    config=_pb.RerankingConfig(model_name="no-such-model"),
                )
            ],
            "requests[0].config.model_name",
        ),
        (
            [
                _pb.RerankBatchRequest(query=QUERY, documents=["ok"]),
                _pb.RerankBatchRequest(
                    query=QUERY, documents=["ok"], config=_pb.RerankingConfig(batch_size=0)
                ),
            ],
            "requests[1].config.batch_size",
        ),
        (
            [_pb.RerankBatchRequest(query=QUERY, documents=["x"] * 60)] * 2,
            "requests",
        ),
    ],
)
async def test_bad_multiple_batches_are_refused_before_any_work(
    app: RerankingApp, requests: list[reranking_service_pb2.RerankBatchRequest], field: str
) -> None:
    engines = [model.engine for model in app.servicer.models.values()]
    before = [engine.stats().total_items for engine in engines]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        stub = reranking_service_pb2_grpc.RerankingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.RerankMultipleBatches(_pb.RerankMultipleBatchesRequest(requests=requests))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (failure.value.details() or "").startswith(field + ":")
    # every sub-request is checked first: the valid ones before the bad one were not scored
    assert [engine.stats().total_items for engine in engines] == before
    await still_serving(app)


async def test_a_passed_timeout_is_deadline_exceeded(app: RerankingApp) -> None:
    request = _pb.RerankBatchRequest(
        query=QUERY, documents=DOCUMENTS, config=_pb.RerankingConfig(timeout_seconds=1e-9)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        stub = reranking_service_pb2_grpc.RerankingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.RerankBatch(request)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await still_serving(app)


async def test_a_request_that_cannot_finish_in_time_is_refused_before_any_work(
    app: RerankingApp,
) -> None:
    engine = app.servicer.models[MINILM_NAME].engine
    documents = [" ".join(["long"] * 300) + f" {i}" for i in range(MAX_ITEMS)]
    work = MAX_ITEMS * 256 / engine.throughput(256)  # the engine's own figures
    batches_before = engine.stats().total_batches
    request = _pb.RerankBatchRequest(
        query=QUERY, documents=documents, config=_pb.RerankingConfig(timeout_seconds=work / 4)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        stub = reranking_service_pb2_grpc.RerankingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.RerankBatch(request)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "longer deadline" in (failure.value.details() or "")
    assert engine.stats().total_batches == batches_before
    assert engine.stats().refused_late >= 1
    await still_serving(app)


# ---- health, stats, batching ------------------------------------------------------------


async def test_health_answers(app: RerankingApp, client: RerankingClient) -> None:
    report = await client.health_check()
    assert report["status"] == "healthy"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reranking_service_pb2_grpc.RerankingServiceStub(channel)
        own = await stub.GetHealth(common_pb2.HealthRequest())
    assert own.status == "healthy"
    assert own.model_loaded
    assert own.device == "cpu"
    assert set(own.loaded_models) == {MINILM_NAME, "tiny"}
    assert own.details["default_model"] == MINILM_NAME
    assert own.uptime_seconds > 0


async def test_concurrent_calls_are_merged_into_model_batches(
    app: RerankingApp, client: RerankingClient
) -> None:
    engine = app.servicer.models[MINILM_NAME].engine
    before_engine = engine.stats()
    before = await client.get_stats()
    calls = [
        client.rerank_batch(query=f"question {i} about diabetes", documents=[RELEVANT])
        for i in range(16)
    ]
    results = await asyncio.gather(*calls)
    after_engine = engine.stats()
    after = await client.get_stats()

    assert all(len(r.results) == 1 and r.results[0].document_index == 0 for r in results)
    items = after_engine.total_items - before_engine.total_items
    batches = after_engine.total_batches - before_engine.total_batches
    assert items == 16
    assert batches < items  # merged: fewer model batches than callers
    assert items / batches > 1

    # GetStats counts the calls and the scored pairs, and the bi-encoder's vector cache:
    # each new query is a miss
    assert int(after["total_requests"]) >= int(before["total_requests"]) + 16
    assert int(after["total_items"]) >= int(before["total_items"]) + 16
    assert float(after["average_batch_size"]) > 1
    assert int(after["cache_misses"]) >= int(before["cache_misses"]) + 16
    assert 0.0 <= float(after["cache_hit_rate"]) <= 1.0
    assert float(after["p99_latency_ms"]) >= float(after["p50_latency_ms"]) > 0
    assert after["extra"]["model_batches"] > 0


async def test_the_bi_encoder_measures_a_text_once_and_scores_it_the_same_from_its_cache(
    app: RerankingApp, client: RerankingClient
) -> None:
    documents = [f"{RELEVANT} (cached copy {n})" for n in range(3)]
    query = "a query asked twice about diabetes"
    before = await client.get_stats()
    first = await client.rerank_batch(query=query, documents=documents)
    middle = await client.get_stats()
    second = await client.rerank_batch(query=query, documents=documents)
    after = await client.get_stats()

    assert scores_of(second) == scores_of(first)
    assert [r.document_index for r in second.results] == [r.document_index for r in first.results]
    assert int(middle["cache_misses"]) - int(before["cache_misses"]) == 4  # query + 3 documents
    assert int(after["cache_hits"]) - int(middle["cache_hits"]) == 4
    assert int(after["cache_misses"]) == int(middle["cache_misses"])


async def test_errors_are_counted_in_stats(app: RerankingApp, client: RerankingClient) -> None:
    before = await client.get_stats()
    with pytest.raises(ValidationError):
        await client.rerank_batch(
            query=QUERY, documents=["ok"], config=_pb.RerankingConfig(model_name="nope")
        )
    after = await client.get_stats()
    assert int(after["total_errors"]) == int(before["total_errors"]) + 1
