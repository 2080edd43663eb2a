"""Overload on the real embedding service: refused at the door, served by deadline, reported.

Decisions depend on the engine's measured throughput, which the tests read from
the engine itself, so they hold on a slow machine as on a fast one; no
assertion is about how long anything took.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest_asyncio

from servicegrid.clients import EmbeddingClient, ServiceClientConfig
from servicegrid.errors import DeadlineExceeded, ResourceExhausted
from servicegrid.proto import embedding_service_pb2
from servicegrid.services.embedding.app import EmbeddingApp, build_embedding_service
from servicegrid.settings import load_settings
from tests.batching.words import until
from tests.support.served import served

pytestmark = pytest.mark.asyncio(loop_scope="module")

LONG = 300  # words: past MiniLM's 256 tokens, so every text costs the same


def texts(tag: str, count: int, words: int = LONG) -> list[str]:
    return [" ".join([f"{tag}{index}", *["overload"] * (words - 1)]) for index in range(count)]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def app() -> AsyncIterator[EmbeddingApp]:
    settings = load_settings(device="cpu", embedding_cache_size=0)
    async with served(build_embedding_service, settings) as built:
        yield built


@pytest_asyncio.fixture(loop_scope="module")
async def client(app: EmbeddingApp) -> AsyncIterator[EmbeddingClient]:
    # one attempt: the tests look at the refusal itself, not at a retry after it
    config = ServiceClientConfig(service_url=f"127.0.0.1:{app.running.port}", retry_attempts=1)
    async with EmbeddingClient(config=config, registry=None) as opened:
        yield opened


def seconds_for(app: EmbeddingApp, count: int, tokens: int = 256) -> float:
    """What the engine expects ``count`` texts ``tokens`` long to take, from its own figures."""
    (model,) = app.servicer.models.values()
    per_second = model.engine.throughput(tokens)
    assert per_second > 0, "the service calibrates its model before serving"
    return count * tokens / per_second


def config(timeout: float) -> embedding_service_pb2.EmbeddingConfig:
    return embedding_service_pb2.EmbeddingConfig(timeout_seconds=timeout)


async def test_a_request_too_big_for_its_deadline_is_refused_before_any_work(
    app: EmbeddingApp, client: EmbeddingClient
) -> None:
    (model,) = app.servicer.models.values()
    batches_before = model.engine.stats().total_batches
    count = 1000
    timeout = seconds_for(app, count) / 4

    with pytest.raises(ResourceExhausted) as refused:
        await client.generate_embeddings(texts=texts("big", count), config=config(timeout))

    assert refused.value.retry_after is None  # as it is, it never fits
    assert "longer deadline" in str(refused.value)
    assert model.engine.stats().total_batches == batches_before
    stats = await client.get_stats()
    assert stats["extra"]["refused_deadline"] >= 1


async def test_work_queued_ahead_refuses_a_later_request_with_a_retry_after(
    app: EmbeddingApp, client: EmbeddingClient
) -> None:
    (model,) = app.servicer.models.values()
    count = 96
    work = seconds_for(app, count)
    first = asyncio.create_task(
        client.generate_embeddings(texts=texts("first", count), config=config(1.5 * work))
    )
    try:
        await until(lambda: model.engine.stats().queued_requests == 1)
        # due after the first, fits alone, but not behind it: 2 x work > 1.6 x work
        with pytest.raises(ResourceExhausted) as refused:
            await client.generate_embeddings(
                texts=texts("second", count), config=config(1.6 * work)
            )
        assert refused.value.retry_after is not None
        assert 0 < refused.value.retry_after < work  # about 0.4 x work
        assert "queued ahead" in str(refused.value)
    finally:
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    stats = model.engine.stats
    await until(lambda: stats().queued == 0 and stats().in_flight_batches == 0)


async def test_under_overload_each_caller_is_answered_or_refused_and_stats_say_so(
    app: EmbeddingApp, client: EmbeddingClient
) -> None:
    """The short version of ``make bench-overload``: twice the work the deadline allows."""
    callers, count = 8, 16
    deadline = callers * seconds_for(app, count) / 2
    before = await client.get_stats()

    outcomes = await asyncio.gather(
        *(
            client.generate_embeddings(texts=texts(f"c{i}-", count), config=config(deadline))
            for i in range(callers)
        ),
        return_exceptions=True,
    )

    served = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, ResourceExhausted)]
    late = [o for o in outcomes if isinstance(o, DeadlineExceeded)]
    assert len(served) + len(refused) + len(late) == callers, outcomes

    assert served, "the requests that fit are answered in full"
    assert refused, "the rest are refused at the door"
    assert all(r.retry_after is not None and r.retry_after > 0 for r in refused)
    assert all(len(s.embeddings) == count for s in served)

    # refusals count against the caller's circuit breaker: ask with a fresh client
    async with EmbeddingClient(service_url=f"127.0.0.1:{app.running.port}", registry=None) as fresh:
        after = await fresh.get_stats()
    extra = after["extra"]
    assert int(after["rejected_requests"]) - int(before["rejected_requests"]) == len(refused)
    assert extra["refused_deadline"] - before["extra"]["refused_deadline"] == len(refused)
    assert extra["completed_items"] - before["extra"]["completed_items"] >= len(served) * count
    assert extra["goodput_items_per_second"] > 0
    assert extra["queued_tokens"] == 0
    assert extra["queued_requests"] == 0
