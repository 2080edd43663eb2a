"""OpenAI ``/v1/embeddings`` and ``/v1/models``, through the official client too."""

from __future__ import annotations

import base64
import struct

import httpx
import numpy as np
import openai
import pytest

from servicegrid.gateway import GatewayClients
from servicegrid.models import MINILM_NAME
from servicegrid.proto import embedding_service_pb2
from tests.gateway.conftest import MAX_CHARS, MAX_ITEMS, AppMaker
from tests.support.threaded_server import ThreadedServer

TEXTS = ["This is a test document", "Metformin is commonly used to treat type 2 diabetes"]
SHORT = MINILM_NAME.rsplit("/", 1)[-1]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


async def direct(clients: GatewayClients, texts: list[str]) -> list[np.ndarray]:
    response = await clients.embedding.generate_embeddings(
        texts, MINILM_NAME, embedding_service_pb2.EmbeddingConfig(normalize=True)
    )
    return [np.asarray(e.values, dtype=np.float32) for e in response.embeddings]


async def test_the_openai_client_gets_the_services_embeddings(
    make_app: AppMaker, clients: GatewayClients
) -> None:
    expected = await direct(clients, TEXTS)
    with ThreadedServer(make_app(), name="gateway") as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        as_floats = client.embeddings.create(
            model=MINILM_NAME, input=TEXTS, encoding_format="float"
        )
        as_base64 = client.embeddings.create(model=SHORT, input=TEXTS)  # base64 on the wire
        models = client.models.list()
    for answer in (as_floats, as_base64):
        assert [d.index for d in answer.data] == [0, 1]
        assert answer.model == MINILM_NAME
        assert answer.usage.prompt_tokens > 0
        assert answer.usage.total_tokens == answer.usage.prompt_tokens
        for datum, want in zip(answer.data, expected, strict=True):
            assert cosine(np.asarray(datum.embedding), want) >= 0.9999
    assert MINILM_NAME in {m.id for m in models.data}


async def test_base64_is_little_endian_float32(api: httpx.AsyncClient) -> None:
    floats = (await api.post("/v1/embeddings", json={"input": "hi"})).json()
    packed = (
        await api.post("/v1/embeddings", json={"input": "hi", "encoding_format": "base64"})
    ).json()
    raw = base64.b64decode(packed["data"][0]["embedding"])
    values = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert np.allclose(values, floats["data"][0]["embedding"], atol=1e-6)
    assert floats["object"] == "list"
    assert floats["data"][0]["object"] == "embedding"
    assert len(values) == 384


@pytest.mark.parametrize("model", [MINILM_NAME, SHORT, None])
async def test_full_short_and_omitted_model_names(
    api: httpx.AsyncClient, model: str | None
) -> None:
    body = {"input": ["a", "b"]} | ({"model": model} if model else {})
    response = await api.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == MINILM_NAME
    assert len(response.json()["data"]) == 2


async def test_an_unknown_model_is_404_model_not_found(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/embeddings", json={"input": "x", "model": "no-such-model"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "no-such-model" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": []}, "input"),
        ({"input": [1, 2, 3]}, "input"),
        ({"input": [[1, 2], [3]]}, "input"),
        ({"input": 5}, "input"),
        ({"input": ["ok", None]}, "input"),
        ({"input": ""}, "input"),
        ({}, "input"),
        ({"input": ["x"] * (MAX_ITEMS + 1)}, "input"),
        ({"input": "x" * (MAX_CHARS + 1)}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 12}, "dimensions"),
        ({"input": "x", "model": 7}, "model"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await api.post("/v1/embeddings", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == field
    assert error["type"] == "invalid_request_error"
    assert field in error["message"]


async def test_malformed_json_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "body"


async def test_dimensions_equal_to_the_models_are_accepted(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/embeddings", json={"input": "x", "dimensions": 384})
    assert response.status_code == 200


async def test_models_lists_each_model_once_with_capabilities(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/models")).json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert len(ids) == len(set(ids))
    minilm = next(m for m in body["data"] if m["id"] == MINILM_NAME)
    assert set(minilm["capabilities"]) == {"embed", "rerank"}
    assert minilm["owned_by"] == "servicegrid"
    assert minilm["object"] == "model"
    assert isinstance(minilm["created"], int)
