"""Cohere/Jina ``/v1/rerank`` and TEI's ``/embed`` and ``/rerank``."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from servicegrid.models import MINILM_NAME

QUERY = "diabetes treatment"
RELEVANT = "Metformin is commonly used to treat type 2 diabetes"
DOCUMENTS = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris",
    "A guide to replacing the inner tube of a bicycle tire",
    RELEVANT,
    "Sourdough bread needs a starter that is fed with flour and water",
]


async def test_v1_rerank_puts_the_relevant_document_first(api: httpx.AsyncClient) -> None:
    documents: list[object] = [*DOCUMENTS[:2], {"text": RELEVANT}, DOCUMENTS[3]]
    body = {
        "query": QUERY,
        "documents": documents,
        "return_documents": True,
        "model": "all-MiniLM-L6-v2",
    }
    response = await api.post("/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    results = answer["results"]
    assert results[0]["index"] == 2
    assert results[0]["document"] == {"text": RELEVANT}
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3]
    assert answer["id"]
    assert answer["model"] == MINILM_NAME
    assert answer["meta"]["billed_units"]["search_units"] == 1


async def test_v1_rerank_top_n_and_no_documents_by_default(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS, "top_n": 2}
    )
    results = response.json()["results"]
    assert len(results) == 2
    assert results[0]["index"] == 2
    assert "document" not in results[0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": QUERY, "documents": []}, "documents"),
        ({"query": QUERY, "documents": [1]}, "documents"),
        ({"query": "", "documents": DOCUMENTS}, "query"),
        ({"documents": DOCUMENTS}, "query"),
        ({"query": QUERY, "documents": DOCUMENTS, "top_n": 0}, "top_n"),
        ({"query": QUERY, "documents": ["x"] * 33}, "documents"),
    ],
)
async def test_v1_rerank_bad_input_is_422_in_openai_shape(
    api: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await api.post("/v1/rerank", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == field


async def test_v1_rerank_unknown_model(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS, "model": "rerank-v3.5"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_tei_rerank_puts_the_relevant_text_first(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/rerank", json={"query": QUERY, "texts": DOCUMENTS, "return_text": True}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer[0]["index"] == 2
    assert answer[0]["text"] == RELEVANT
    assert [a["score"] for a in answer] == sorted((a["score"] for a in answer), reverse=True)
    plain = (await api.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS})).json()
    assert "text" not in plain[0]


async def test_tei_embed_answers_a_list_of_float_lists(api: httpx.AsyncClient) -> None:
    one = (await api.post("/embed", json={"inputs": "hello"})).json()
    many = (await api.post("/embed", json={"inputs": ["hello", "world"]})).json()
    assert isinstance(one, list)
    assert len(one) == 1
    assert len(one[0]) == 384
    assert len(many) == 2
    assert all(isinstance(x, float) for x in many[1])
    assert np.isclose(np.linalg.norm(one[0]), 1.0, atol=1e-4)
    assert np.allclose(one[0], many[0], atol=1e-5)


async def test_tei_truncation_is_refused_unless_asked_for(api: httpx.AsyncClient) -> None:
    long_text = "word " * 390  # more tokens than MiniLM reads, fewer characters than the cap
    refused = await api.post("/embed", json={"inputs": long_text})
    assert refused.status_code == 422
    assert refused.json()["error_type"] == "validation"
    cut = await api.post("/embed", json={"inputs": long_text, "truncate": True})
    assert cut.status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/embed", {"inputs": []}, "inputs"),
        ("/embed", {"inputs": [1]}, "inputs"),
        ("/embed", {}, "inputs"),
        ("/rerank", {"query": QUERY, "texts": []}, "texts"),
        ("/rerank", {"query": QUERY}, "texts"),
        ("/rerank", {"query": 3, "texts": ["a"]}, "query"),
        ("/embed", {"inputs": "x", "model": "nope"}, "nope"),
    ],
)
async def test_tei_errors_come_in_teis_shape(
    api: httpx.AsyncClient, path: str, body: dict[str, object], field: str
) -> None:
    response = await api.post(path, json=body)
    assert response.status_code == (404 if field == "nope" else 422), response.text
    answer = response.json()
    assert set(answer) == {"error", "error_type"}
    assert isinstance(answer["error"], str)
    assert field in answer["error"]


@pytest.mark.parametrize(
    ("path", "raw", "status"),
    [
        ("/v1/embeddings", b'{"input": "\\ud800"}', 422),
        ("/embed", b'{"inputs": ["a\\udfff"]}', 422),
        ("/v1/rerank", b'{"query": "\\ud800", "documents": ["a"]}', 422),
        ("/rerank", b'{"query": "q", "texts": ["\\ud800"]}', 422),
        ("/v1/embeddings", b'{"input": "x", "model": "\\ud800"}', 404),
    ],
)
async def test_lone_surrogates_are_refused_not_a_500(
    api: httpx.AsyncClient, path: str, raw: bytes, status: int
) -> None:
    response = await api.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
