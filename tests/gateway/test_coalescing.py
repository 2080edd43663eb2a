"""The gateway's EmbeddingCoalescer against the real embedding service: the requests of
one loop turn share an RPC, and each caller still sees only its own answer or error."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pytest

from servicegrid.clients import EmbeddingClient
from servicegrid.errors import ServiceError, ValidationError
from servicegrid.gateway.clients import GatewayClients
from servicegrid.gateway.coalescing import EmbeddingCoalescer
from servicegrid.proto import embedding_service_pb2
from tests.gateway.conftest import ModelServices, quick
from tests.support.faulty_server import free_port

NORMALIZED = embedding_service_pb2.EmbeddingConfig(normalize=True)


class RecordingClient:
    """Sends through a real EmbeddingClient and notes each RPC: ("one" | "batch", size)."""

    def __init__(self, client: EmbeddingClient) -> None:
        self.client = client
        self.rpcs: list[tuple[str, int]] = []

    async def generate_embeddings(self, texts: Sequence[str], model_name: str, config: Any) -> Any:
        self.rpcs.append(("one", len(texts)))
        return await self.client.generate_embeddings(texts, model_name, config)

    async def generate_embeddings_batch(self, requests: Any) -> Any:
        self.rpcs.append(("batch", len(requests)))
        return await self.client.generate_embeddings_batch(requests)


def coalescer(clients: GatewayClients, max_texts: int = 64) -> tuple[EmbeddingCoalescer, Any]:
    recording = RecordingClient(clients.embedding)
    return EmbeddingCoalescer(cast(EmbeddingClient, recording), max_texts=max_texts), recording


def vector(response: embedding_service_pb2.GenerateEmbeddingsResponse, index: int = 0) -> Any:
    return np.array(response.embeddings[index].values, dtype=np.float32)


async def test_the_requests_of_one_loop_turn_share_one_rpc_and_each_gets_its_own_answer(
    services: ModelServices, clients: GatewayClients
) -> None:
    joined, recording = coalescer(clients)
    texts = [f"a sentence about topic number {i}" for i in range(8)]
    answers = await asyncio.gather(*(joined.embed([text], "", NORMALIZED) for text in texts))
    assert recording.rpcs == [("batch", 8)]
    for text, answer in zip(texts, answers, strict=True):
        alone = await clients.embedding.generate_embeddings([text], "", NORMALIZED)
        assert len(answer.embeddings) == 1
        assert float(vector(answer) @ vector(alone)) > 0.9999
        assert answer.embeddings[0].token_count == alone.embeddings[0].token_count


async def test_a_lone_request_is_sent_as_it_came(
    services: ModelServices, clients: GatewayClients
) -> None:
    joined, recording = coalescer(clients)
    answer = await joined.embed(["one", "two", "three"], "", NORMALIZED)
    assert recording.rpcs == [("one", 3)]
    assert len(answer.embeddings) == 3


async def test_a_request_over_max_texts_starts_the_next_rpc(
    services: ModelServices, clients: GatewayClients
) -> None:
    joined, recording = coalescer(clients, max_texts=4)
    pairs = [[f"text {i}a", f"text {i}b"] for i in range(3)]
    answers = await asyncio.gather(*(joined.embed(pair, "", NORMALIZED) for pair in pairs))
    assert recording.rpcs == [("batch", 2), ("one", 2)]
    assert [len(answer.embeddings) for answer in answers] == [2, 2, 2]


async def test_a_refused_request_fails_alone_and_its_neighbours_are_answered(
    services: ModelServices, clients: GatewayClients
) -> None:
    joined, recording = coalescer(clients)
    outcomes = await asyncio.gather(
        joined.embed(["fine"], "", NORMALIZED),
        joined.embed(["refused"], "no-such-model", NORMALIZED),
        joined.embed(["also fine"], "", NORMALIZED),
        return_exceptions=True,
    )
    assert recording.rpcs[0] == ("batch", 3)  # refused whole, then each alone
    assert sorted(recording.rpcs[1:]) == [("one", 1)] * 3
    assert isinstance(outcomes[1], ValidationError)
    assert "no-such-model" in str(outcomes[1])
    for fine in (outcomes[0], outcomes[2]):
        assert isinstance(fine, embedding_service_pb2.GenerateEmbeddingsResponse)
        assert len(fine.embeddings) == 1


async def test_a_caller_that_goes_away_leaves_the_shared_rpc_to_its_neighbours(
    services: ModelServices, clients: GatewayClients
) -> None:
    joined, _ = coalescer(clients)
    leaving = asyncio.ensure_future(joined.embed(["leaves"], "", NORMALIZED))
    staying = asyncio.ensure_future(joined.embed(["stays"], "", NORMALIZED))
    await asyncio.sleep(0)  # both are waiting on the shared RPC
    leaving.cancel()
    answer = await staying
    assert len(answer.embeddings) == 1
    assert leaving.cancelled()
    await joined.aclose()


async def test_an_upstream_that_is_down_fails_every_caller_of_the_rpc_with_its_error(
    services: ModelServices,
) -> None:
    dead = EmbeddingClient(config=quick(free_port()), registry=None)
    try:
        joined = EmbeddingCoalescer(dead, max_texts=64)
        outcomes = await asyncio.gather(
            *(joined.embed([f"text {i}"], "", NORMALIZED) for i in range(3)),
            return_exceptions=True,
        )
    finally:
        await dead.aclose()
    for outcome in outcomes:
        assert isinstance(outcome, ServiceError)
        assert not isinstance(outcome, ValidationError)
        assert outcome.retryable


async def test_aclose_waits_for_the_rpcs_in_flight(
    services: ModelServices, clients: GatewayClients
) -> None:
    joined, _ = coalescer(clients)
    pending = [asyncio.ensure_future(joined.embed([f"t{i}"], "", NORMALIZED)) for i in range(4)]
    await asyncio.sleep(0)
    await joined.aclose()
    assert all(task.done() for task in pending)
    assert [len(task.result().embeddings) for task in pending] == [1, 1, 1, 1]


@pytest.mark.parametrize("route", ["/v1/embeddings", "/embed"])
async def test_concurrent_gateway_requests_are_each_answered_in_order(
    services: ModelServices, api: Any, route: str
) -> None:
    texts = [f"gateway text {i}" for i in range(12)]
    field = "input" if route == "/v1/embeddings" else "inputs"
    bodies = [{field: [text, text + " again"]} for text in texts]
    answers = await asyncio.gather(*(api.post(route, json=body) for body in bodies))

    def vectors(body: Any) -> Any:
        return np.array([item["embedding"] for item in body["data"]] if field == "input" else body)

    for text, answer in zip(texts, answers, strict=True):
        assert answer.status_code == 200, answer.text
        alone = await api.post(route, json={field: [text, text + " again"]})
        assert np.allclose(vectors(answer.json()), vectors(alone.json()), atol=1e-6)
