"""ProductionEmbeddingService with the real all-MiniLM-L6-v2 weights, in this process and
behind the real servicegrid gateway (over the real embedding service), and against a real
server that answers 500s or what is not an embeddings answer."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from servicegrid import ProductionEmbeddingService
from servicegrid.clients.enhanced import RetryConfig
from servicegrid.embeddings import EmbeddingResult, cosine_similarity
from servicegrid.errors import (
    ClientStateError,
    InvalidResponse,
    ServiceError,
    ServiceUnavailable,
    ValidationError,
)
from tests.support.faulty_server import FaultyServer
from tests.support.threaded_server import ThreadedServer, free_port

pytest.importorskip("torch", reason="the models extra (torch) is not installed")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytestmark = pytest.mark.asyncio(loop_scope="module")

MINILM_DIMENSION = 384
METRIC_KEYS = {
    "requests_total",
    "errors_total",
    "error_rate",
    "average_latency_ms",
    "truncations",
    "batches_total",
    "cache",
}
CACHE_KEYS = {"hit_rate", "hits", "misses", "size", "max_entries"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def local() -> AsyncIterator[ProductionEmbeddingService]:
    """The default service (the packaged MiniLM, in this process), started once."""
    service = ProductionEmbeddingService()
    await service.start()
    yield service
    await service.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real gateway over the real embedding service, each on a loopback port; its URL."""
    from servicegrid.gateway import create_app
    from servicegrid.settings import load_settings
    from tests.support.embedding_thread import ServiceThread

    embedding = ServiceThread(free_port())
    embedding.start()
    jobs: Path = tmp_path_factory.mktemp("gateway") / "jobs.sqlite3"
    settings = load_settings(
        embedding_service_url=f"127.0.0.1:{embedding.port}",
        database_url=f"sqlite:///{jobs}",
        device="cpu",
    )
    try:
        with ThreadedServer(
            create_app(settings), lifespan="on", name="gateway", start_timeout=60
        ) as server:
            yield server.url
    finally:
        embedding.close()


@pytest.fixture
def failing() -> Iterator[FaultyServer]:
    with FaultyServer() as server:
        yield server


def remote(url: str, **options: Any) -> ProductionEmbeddingService:
    return ProductionEmbeddingService(base_url=url, **options)


# --- local mode --------------------------------------------------------------------------------


async def test_one_text_gives_one_result_and_a_list_a_list(
    local: ProductionEmbeddingService,
) -> None:
    one = await local.embed("Hello world, once")
    assert isinstance(one, EmbeddingResult)
    assert one.dimension == len(one.embedding) == MINILM_DIMENSION
    assert all(isinstance(value, float) for value in one.embedding)
    assert one.cached is False
    assert one.model == "sentence-transformers/all-MiniLM-L6-v2"

    many = await local.embed(["text1 of three", "text2 of three", "text3 of three"])
    assert isinstance(many, list)
    assert [r.dimension for r in many] == [MINILM_DIMENSION] * 3
    assert len({tuple(r.embedding) for r in many}) == 3
    assert local.dimension == MINILM_DIMENSION


async def test_a_repeated_text_comes_from_the_cache(local: ProductionEmbeddingService) -> None:
    before = local.get_metrics()["cache"]
    first = await local.embed("the cache should keep this one")
    again = await local.embed("the cache should keep this one")
    after = local.get_metrics()["cache"]
    assert (first.cached, again.cached) == (False, True)
    assert again.embedding == first.embedding
    assert after["hits"] == before["hits"] + 1
    assert after["misses"] == before["misses"] + 1
    assert after["size"] == before["size"] + 1
    assert 0.0 < after["hit_rate"] <= 1.0
    again.embedding[0] = 42.0  # a caller changing its copy leaves the cache alone
    assert (await local.embed("the cache should keep this one")).embedding == first.embedding


async def test_a_text_repeated_in_one_call_is_embedded_once(
    local: ProductionEmbeddingService,
) -> None:
    before = local.get_metrics()
    results = await local.embed(["twice in one call", "twice in one call"])
    after = local.get_metrics()
    assert results[0].embedding == results[1].embedding
    assert after["texts_embedded"] == before["texts_embedded"] + 1
    assert after["texts_total"] == before["texts_total"] + 2


async def test_texts_past_max_text_length_are_cut_and_counted(
    local: ProductionEmbeddingService,
) -> None:
    assert local.max_text_length == 8192
    long_text = "word " * 1700 + "and then some more text beyond the limit"
    assert len(long_text) > 8192
    before = local.get_metrics()["truncations"]
    result = await local.embed(long_text)
    assert result.truncated is True
    assert local.get_metrics()["truncations"] == before + 1
    # the cut text is what was embedded, and cached
    prefix = await local.embed(long_text[:8192])
    assert prefix.cached is True
    assert prefix.truncated is False
    assert prefix.embedding == result.embedding


async def test_cat_is_closer_to_kitten_than_to_car(local: ProductionEmbeddingService) -> None:
    kitten = await local.compute_similarity("cat", "kitten")
    car = await local.compute_similarity("cat", "car")
    assert isinstance(kitten, float)
    assert kitten > car
    assert -1.0 <= car < kitten <= 1.0
    assert await local.compute_similarity("cat", "cat") == pytest.approx(1.0, abs=1e-6)


async def test_metrics_have_the_seed_keys(local: ProductionEmbeddingService) -> None:
    await local.embed("for the metrics")
    metrics = local.get_metrics()
    assert metrics.keys() >= METRIC_KEYS
    assert metrics["cache"].keys() >= CACHE_KEYS
    assert metrics["cache"]["max_entries"] == 1000
    assert metrics["batch_size"] == 32
    assert metrics["mode"] == "local"
    assert metrics["backend"]["backend"] == "sentence_transformers"
    assert metrics["requests_total"] >= 1
    assert metrics["average_latency_ms"] > 0.0
    json.dumps(metrics)


async def test_local_health_check_has_the_seed_shape(local: ProductionEmbeddingService) -> None:
    health = await local.health_check()
    assert health.keys() >= {"status", "metrics", "circuit_breaker", "rate_limiter"}
    assert health["status"] == "healthy"
    assert health["metrics"]["state"] == "opened"
    assert health["circuit_breaker"] is None  # no remote API to break away from
    assert health["rate_limiter"] is None
    json.dumps(health)


@pytest.mark.parametrize(
    ("texts", "field"),
    [
        ([], "texts"),
        (["fine", 3], "texts[1]"),
        (["fine", ""], "texts[1]"),
        ("", "text"),
        (None, "texts"),
        (b"bytes", "texts"),
        ({"a set"}, "texts"),
        (42, "texts"),
    ],
)
async def test_bad_input_names_the_field(
    local: ProductionEmbeddingService, texts: Any, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await local.embed(texts)
    assert caught.value.validation_errors[0]["field"] == field


async def test_similarity_of_a_non_string_names_the_argument(
    local: ProductionEmbeddingService,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await local.compute_similarity("cat", 5)  # type: ignore[arg-type]
    assert caught.value.validation_errors[0]["field"] == "text2"


async def test_embed_before_start_and_after_stop_is_a_client_state_error() -> None:
    service = ProductionEmbeddingService()
    with pytest.raises(ClientStateError, match="start"):
        await service.embed("too early")
    assert (await service.health_check())["status"] == "unknown"
    await service.stop()
    with pytest.raises(ClientStateError, match="stopped"):
        await service.embed("too late")
    with pytest.raises(ClientStateError):
        await service.start()
    assert (await service.health_check())["status"] == "unhealthy"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_text_length": 0}, "max_text_length"),
        ({"cache_size": -1}, "cache_size"),
        ({"model": ""}, "model"),
        ({"device": "cpu", "base_url": "http://127.0.0.1:1"}, "device: not options of a remote"),
        ({"rate_limit_config": object()}, "rate_limit_config: not options of a local"),
    ],
)
async def test_bad_arguments_are_value_errors(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        ProductionEmbeddingService(**options)


# --- remote mode -------------------------------------------------------------------------------


async def test_remote_mode_through_the_gateway_matches_the_local_model(
    gateway: str, local: ProductionEmbeddingService
) -> None:
    texts = ["cat", "kitten", "a sentence about something else"]
    here = await local.embed(texts)
    async with remote(gateway) as service:
        there = await service.embed(texts)
        assert (await service.embed("kitten")).cached is True
        kitten = await service.compute_similarity("cat", "kitten")
        car = await service.compute_similarity("cat", "car")
        metrics = service.get_metrics()
    for a, b in zip(here, there, strict=True):
        assert b.dimension == MINILM_DIMENSION
        assert cosine_similarity(a.embedding, b.embedding) > 0.999
    assert kitten > car
    assert metrics["mode"] == "remote"
    assert metrics["backend"]["endpoint"] == "/v1/embeddings"
    assert metrics["cache"]["hits"] >= 2


async def test_an_openai_style_base_url_ending_in_v1_works(gateway: str) -> None:
    async with remote(f"{gateway}/v1", model="all-MiniLM-L6-v2") as service:
        result = await service.embed("through /v1")
        assert service.get_metrics()["backend"]["endpoint"] == "/embeddings"
    assert result.dimension == MINILM_DIMENSION


async def test_remote_texts_go_in_batches_and_the_cache_evicts_the_oldest(gateway: str) -> None:
    async with remote(gateway, batch_size=2, cache_size=3) as service:
        await service.embed(["one", "two", "three", "four", "five"])
        metrics = service.get_metrics()
        assert metrics["batches_total"] == 3
        assert metrics["cache"]["size"] == 3
        assert (await service.embed("five")).cached is True
        assert (await service.embed("one")).cached is False  # evicted


async def test_remote_health_check_has_the_seed_shape_and_defaults(gateway: str) -> None:
    async with remote(gateway, health_check_path="/health") as service:
        await service.embed("healthy enough")
        health = await service.health_check()
    assert health["status"] == "healthy"
    assert health["circuit_breaker"]["state"] == "closed"
    assert health["rate_limiter"]["rate"] == 5.0
    assert health["rate_limiter"]["burst"] == 10
    assert health["health"]["status"] == "healthy"
    assert health["metrics"]["requests_total"] == 1
    assert health["metrics"]["backend"]["max_connections"] == 50
    json.dumps(health)


async def test_the_breaker_opens_after_five_500s(failing: FaultyServer) -> None:
    failing.set(mode="fail", status=500)
    async with remote(failing.url, retry_config=RetryConfig(max_retries=1)) as service:
        for _ in range(5):
            with pytest.raises(ServiceError) as caught:
                await service.embed("refused")
            assert not isinstance(caught.value, ServiceUnavailable)
        with pytest.raises(ServiceUnavailable):
            await service.embed("not even sent")
        health = await service.health_check()
        metrics = service.get_metrics()
    assert failing.behaviour.total_hits == 5
    assert health["status"] == "unhealthy"
    assert health["circuit_breaker"]["state"] == "open"
    assert metrics["errors_total"] == metrics["requests_total"] == 6
    assert metrics["errors_by_type"]["ServiceUnavailable"] == 1
    assert metrics["error_rate"] == 1.0


async def test_an_answer_that_is_not_embeddings_is_an_invalid_response(
    failing: FaultyServer,
) -> None:
    async with remote(failing.url) as service:  # answers {"ok": true, ...}
        with pytest.raises(InvalidResponse, match="expected 1 embeddings"):
            await service.embed("anything")
        assert service.get_metrics()["cache"]["size"] == 0
