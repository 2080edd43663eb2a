"""The embedding service in-process with the real MiniLM weights, through EmbeddingClient."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import grpc
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from servicegrid.clients import EmbeddingClient, ServiceClientConfig
from servicegrid.errors import (
    DeadlineExceeded,
    InternalError,
    ResourceExhausted,
    ServiceError,
    ServiceTimeoutError,
    ValidationError,
)
from servicegrid.models import MINILM_NAME, resolve_model_path
from servicegrid.proto import embedding_service_pb2
from servicegrid.services.embedding.app import EmbeddingApp, build_embedding_service
from servicegrid.settings import load_settings
from tests.support.served import served

TEXTS = [
    "This is a test document",
    "Another test document",
    "Metformin is commonly used to treat type 2 diabetes",
]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def app() -> AsyncIterator[EmbeddingApp]:
    settings = load_settings(device="cpu", max_items_per_request=1000, max_text_chars=50_000)
    async with served(build_embedding_service, settings) as built:
        yield built


@pytest_asyncio.fixture(loop_scope="module")
async def client(app: EmbeddingApp) -> AsyncIterator[EmbeddingClient]:
    async with EmbeddingClient(service_url=f"127.0.0.1:{app.running.port}", registry=None) as c:
        yield c


def minilm_tokenizer() -> Any:
    """MiniLM's own tokenizer, whichever runtime (torch or ONNX Runtime) the service runs."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_model_path(MINILM_NAME)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_seed_usage_matches_in_process_encode(
    app: EmbeddingApp, client: EmbeddingClient
) -> None:
    response = await client.generate_embeddings(
        texts=TEXTS,
        model_name=MINILM_NAME,
        config=embedding_service_pb2.EmbeddingConfig(
            normalize=True, batch_size=32, timeout_seconds=30.0
        ),
    )
    reference = app.servicer.models[MINILM_NAME].embedder.encode(TEXTS, normalize=True)
    assert len(response.embeddings) == len(TEXTS)
    for embedding, expected in zip(response.embeddings, reference, strict=True):
        assert embedding.dimension == 384
        assert embedding.norm == pytest.approx(1.0, abs=1e-4)
        assert cosine(np.array(embedding.values), expected) >= 0.999
    assert response.metadata.model_name == MINILM_NAME
    assert response.metadata.batch_size == 32
    assert response.metadata.processing_time_ms > 0


async def test_batch_request_and_list_models(client: EmbeddingClient) -> None:
    batch = embedding_service_pb2.GenerateEmbeddingsBatchRequest(
        requests=[
            embedding_service_pb2.GenerateEmbeddingsRequest(
                texts=["Document 1", "Document 2"], model_name=MINILM_NAME
            ),
            embedding_service_pb2.GenerateEmbeddingsRequest(texts=["Document 3", "Document 4"]),
        ]
    )
    response = await client.generate_embeddings_batch(batch)
    assert [len(r.embeddings) for r in response.responses] == [2, 2]
    models = await client.list_models()
    assert [(m.name, m.dimension, m.available) for m in models.models] == [(MINILM_NAME, 384, True)]
    assert models.models[0].max_sequence_length == 256


async def test_cache_hits_show_in_stats(client: EmbeddingClient) -> None:
    before = await client.get_stats()
    texts = ["a text that is cached after the first call"]
    first = await client.generate_embeddings(texts=texts)
    second = await client.generate_embeddings(texts=texts)
    after = await client.get_stats()
    assert list(first.embeddings[0].values) == list(second.embeddings[0].values)
    assert int(after["cache_hits"]) >= int(before.get("cache_hits", 0)) + 1
    assert float(after["cache_hit_rate"]) > 0


async def test_concurrent_single_text_calls_are_batched(
    app: EmbeddingApp, client: EmbeddingClient
) -> None:
    engine = app.servicer.models[MINILM_NAME].engine
    before = engine.stats()
    texts = [f"concurrent caller number {i} asks for an embedding" for i in range(48)]
    results = await asyncio.gather(*(client.generate_embeddings(texts=[t]) for t in texts))
    after = engine.stats()
    assert all(len(r.embeddings) == 1 for r in results)
    items = after.total_items - before.total_items
    batches = after.total_batches - before.total_batches
    assert items == 48
    assert batches < items  # merged: fewer model batches than callers


async def test_truncation_is_reported(client: EmbeddingClient) -> None:
    response = await client.generate_embeddings(texts=["word " * 2_000, "short"])
    assert [e.truncated for e in response.embeddings] == [True, False]


async def test_health_and_reflection_answer(app: EmbeddingApp) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "servicegrid.v1.EmbeddingService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name async for r in replies for s in r.list_services_response.service}
    assert "servicegrid.v1.EmbeddingService" in names
    assert "grpc.health.v1.Health" in names


@pytest.mark.parametrize(
    ("texts", "config", "model", "field"),
    [
        ([], None, "", "texts"),
        ([""], None, "", "texts[0]"),
        (["ok", "   "], None, "", "texts[1]"),
        (["x"] * 1_001, None, "", "texts"),
        (["x"] * 100_000, None, "", "texts"),
        (["x" * 10_000_000], None, "", "texts[0]"),
        (["ok"], None, "no-such-model", "model_name"),
        (["ok"], {"batch_size": 0}, "", "config.batch_size"),
        (["ok"], {"batch_size": -1}, "", "config.batch_size"),
        (["ok"], {"timeout_seconds": math.nan}, "", "config.timeout_seconds"),
        (["ok"], {"timeout_seconds": 0.0}, "", "config.timeout_seconds"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    app: EmbeddingApp,
    texts: list[str],
    config: dict[str, float] | None,
    model: str,
    field: str,
) -> None:
    request = embedding_service_pb2.GenerateEmbeddingsRequest(
        texts=texts,
        model_name=model,
        config=embedding_service_pb2.EmbeddingConfig(**config) if config else None,
    )
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.running.port}", options=options
    ) as channel:
        stub = embedding_service_pb2.DESCRIPTOR.services_by_name["EmbeddingService"]
        call = channel.unary_unary(
            f"/{stub.full_name}/GenerateEmbeddings",
            request_serializer=embedding_service_pb2.GenerateEmbeddingsRequest.SerializeToString,
            response_deserializer=embedding_service_pb2.GenerateEmbeddingsResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call(request)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (failure.value.details() or "").startswith(field)
    # the service is unharmed
    async with EmbeddingClient(
        service_url=f"127.0.0.1:{app.running.port}", registry=None
    ) as client:
        assert len((await client.generate_embeddings(texts=["still fine"])).embeddings) == 1


async def test_bad_input_through_the_client_is_a_typed_validation_error(
    client: EmbeddingClient,
) -> None:
    with pytest.raises(ValidationError) as failure:
        await client.generate_embeddings(texts=["ok"], model_name="no-such-model")
    assert isinstance(failure.value, ServiceError)
    assert "model_name" in str(failure.value)


async def test_undecodable_bytes_are_refused_and_the_service_survives(app: EmbeddingApp) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        call = channel.unary_unary(
            "/servicegrid.v1.EmbeddingService/GenerateEmbeddings",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call(b"\xff\xff\xff\xff not a protobuf message")
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "servicegrid.v1.GenerateEmbeddingsRequest" in (failure.value.details() or "")
    async with EmbeddingClient(
        service_url=f"127.0.0.1:{app.running.port}", registry=None
    ) as client:
        assert len((await client.generate_embeddings(texts=["still fine"])).embeddings) == 1


async def test_a_model_failure_fails_only_its_batch_and_the_next_calls_succeed(
    app: EmbeddingApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = app.servicer.models[MINILM_NAME]
    forward = model.embedder.forward

    # the first word piece of "giraffe", in no other text of this module
    marker = minilm_tokenizer()("giraffe", add_special_tokens=False)["input_ids"][0]

    def poisoned(prepared: dict[str, Any]) -> Any:
        if bool((prepared["input_ids"] == marker).any()):
            raise RuntimeError("injected model failure")
        return forward(prepared)

    poison = "a giraffe in the batch makes the model fail"
    failed_before = model.engine.stats().failed_batches
    monkeypatch.setattr(model.embedder, "forward", poisoned)
    config = ServiceClientConfig(service_url=f"127.0.0.1:{app.running.port}", retry_attempts=1)
    async with EmbeddingClient(config=config, registry=None) as client:
        with pytest.raises(InternalError) as failure:
            await client.generate_embeddings(texts=[poison])
        assert "injected" not in str(failure.value)  # internals stay on the server
        answered = await asyncio.gather(
            *(client.generate_embeddings(texts=[f"{t} again"]) for t in TEXTS)
        )
    assert [len(r.embeddings) for r in answered] == [1, 1, 1]
    assert model.engine.stats().failed_batches == failed_before + 1


async def test_a_passed_timeout_is_deadline_exceeded(app: EmbeddingApp) -> None:
    config = ServiceClientConfig(service_url=f"127.0.0.1:{app.running.port}", retry_attempts=1)
    async with EmbeddingClient(config=config, registry=None) as client:
        with pytest.raises((DeadlineExceeded, ServiceTimeoutError)):
            await client.generate_embeddings(
                texts=["too late"],
                config=embedding_service_pb2.EmbeddingConfig(timeout_seconds=1e-9),
            )
        assert len((await client.generate_embeddings(texts=["in time"])).embeddings) == 1


async def test_a_full_queue_answers_resource_exhausted() -> None:
    settings = load_settings(device="cpu", max_queue=4, max_batch_size=4)
    async with served(build_embedding_service, settings) as small:
        config = ServiceClientConfig(
            service_url=f"127.0.0.1:{small.running.port}", retry_attempts=1
        )
        # the model waits until the first refusal, so the queue fills however fast it runs
        model = small.servicer.models[MINILM_NAME].embedder
        forward, gate = model.forward, threading.Event()

        def held(prepared: Any) -> Any:
            gate.wait(timeout=60)
            return forward(prepared)

        setattr(model, "forward", held)  # noqa: B010 - an instance attribute, for this test
        async with EmbeddingClient(config=config, registry=None) as client:
            texts = [f"queue pressure text {i}" for i in range(8)]
            calls = [
                asyncio.ensure_future(client.generate_embeddings(texts=[t])) for t in texts * 4
            ]
            try:
                for first in asyncio.as_completed(calls):
                    with contextlib.suppress(ResourceExhausted):
                        await first
                    break
            finally:
                gate.set()
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            refused = [o for o in outcomes if isinstance(o, ResourceExhausted)]
            answered = [o for o in outcomes if not isinstance(o, BaseException)]
            assert refused, "some callers must be shed while four items already wait"
            assert answered, "the others are answered"
            assert all(
                not isinstance(o, BaseException) or isinstance(o, ResourceExhausted)
                for o in outcomes
            )
        # a fresh client finds the service answering again once the pressure is gone
        async with EmbeddingClient(config=config, registry=None) as fresh:
            assert len((await fresh.generate_embeddings(texts=["after"])).embeddings) == 1
            stats = await fresh.get_stats()
        assert int(stats["rejected_requests"]) >= len(refused)


async def test_each_result_says_how_many_tokens_the_model_read(
    app: EmbeddingApp, client: EmbeddingClient
) -> None:
    texts = ["hello", "Metformin is commonly used to treat type 2 diabetes", "word " * 1000]
    response = await client.generate_embeddings(texts=texts)
    tokenizer = minilm_tokenizer()
    expected = [len(tokenizer(text)["input_ids"]) for text in texts[:2]]
    counts = [e.token_count for e in response.embeddings]
    assert counts[:2] == expected
    assert counts[2] == app.servicer.models[MINILM_NAME].embedder.max_length  # cut, truncated
    assert response.embeddings[2].truncated
    cached = await client.generate_embeddings(texts=texts[:1])  # answered from the cache
    assert cached.embeddings[0].token_count == expected[0]
