"""Issue 14, acceptance 1: the gateway and what it fronts as processes, driven as a user would.

The embedding, reranking and document services, two stand-in OpenAI-compatible LLM hosts
and the gateway each run as a process of their own (:mod:`tests.support.gateway_processes`).
The official ``openai`` client gets embeddings that match the embedding service's own and
chat completions that survive one LLM host being SIGKILLed; both rerank APIs put the
relevant document first; a PDF upload answers its title and table, now and as a job.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from servicegrid.clients import EmbeddingClient, ServiceClientConfig
from servicegrid.models import MINILM_NAME
from servicegrid.proto import embedding_service_pb2
from tests.gateway.test_documents import PDF, ROWS, TITLE
from tests.support.gateway_processes import GatewayProcesses

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

KEY = "test-key"
SHORT = MINILM_NAME.rsplit("/", 1)[-1]  # all-MiniLM-L6-v2
TEXTS = ["This is a test document", "Metformin is commonly used to treat type 2 diabetes"]
QUERY = "What treats type 2 diabetes?"
DOCUMENTS = [
    "Paris is the capital of France.",
    "Metformin is a first-line medication for type 2 diabetes.",
    "The Great Wall of China is visible from far away.",
]
RELEVANT = 1
MESSAGES: list[Any] = [{"role": "user", "content": "Hi"}]
JOB_DEADLINE = 60.0  # seconds an async document job may take


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcesses]:
    with GatewayProcesses(tmp_path_factory.mktemp("gateway-processes"), api_key=KEY) as running:
        yield running


@pytest.fixture
def http(stack: GatewayProcesses) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=60.0) as client:
        yield client


def openai_client(stack: GatewayProcesses) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.gateway_url}/v1", api_key=KEY, max_retries=0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


async def services_own(stack: GatewayProcesses, texts: list[str]) -> list[np.ndarray]:
    """The embedding service's answer, asked directly over gRPC."""
    config = ServiceClientConfig(
        service_url=f"127.0.0.1:{stack.ports['embedding']}", timeout=30.0, retry_attempts=1
    )
    async with EmbeddingClient(config=config, registry=None) as client:
        response = await client.generate_embeddings(
            texts, MINILM_NAME, embedding_service_pb2.EmbeddingConfig(normalize=True)
        )
    return [np.asarray(e.values, dtype=np.float32) for e in response.embeddings]


async def test_the_openai_client_gets_the_embedding_services_own_answer(
    stack: GatewayProcesses,
) -> None:
    expected = await services_own(stack, TEXTS)
    async with openai.AsyncOpenAI(
        base_url=f"{stack.gateway_url}/v1", api_key=KEY, max_retries=0
    ) as client:
        as_floats = await client.embeddings.create(
            model=MINILM_NAME, input=TEXTS, encoding_format="float"
        )
        as_base64 = await client.embeddings.create(
            model=SHORT, input=TEXTS, encoding_format="base64"
        )
    floats = [np.asarray(d.embedding, dtype=np.float32) for d in as_floats.data]
    # asked for base64 by name, the client hands the string over as the gateway sent it
    decoded = [
        np.frombuffer(base64.b64decode(str(d.embedding)), dtype="<f4") for d in as_base64.data
    ]
    for answer in (as_floats, as_base64):
        assert answer.model == MINILM_NAME
        assert [d.index for d in answer.data] == [0, 1]
        assert answer.usage.prompt_tokens > 0
        assert answer.usage.total_tokens == answer.usage.prompt_tokens
    for got in (floats, decoded):
        assert len(got) == len(expected)
        for vector, want in zip(got, expected, strict=True):
            assert vector.shape == want.shape
            assert cosine(vector, want) >= 0.9999


def test_chat_completions_streamed_and_not_survive_a_killed_host(
    stack: GatewayProcesses,
) -> None:
    client = openai_client(stack)
    plain = client.chat.completions.create(model="standin-llm", messages=MESSAGES)
    chunks = client.chat.completions.create(model="standin-llm", messages=MESSAGES, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    before = {plain.choices[0].message.content, streamed}
    # round robin over two hosts: each answered one of the two
    assert before == {"Hello from a", "Hello from b"}

    stack.kill("llm-b")
    after = [
        client.chat.completions.create(model="standin-llm", messages=MESSAGES),
        client.chat.completions.create(model="standin-llm", messages=MESSAGES),
    ]
    assert [a.choices[0].message.content for a in after] == ["Hello from a"] * 2


def test_both_rerank_apis_put_the_relevant_document_first(http: httpx.Client) -> None:
    cohere = http.post(
        "/v1/rerank",
        json={"query": QUERY, "documents": DOCUMENTS, "top_n": 3, "return_documents": True},
    )
    assert cohere.status_code == 200, cohere.text
    results = cohere.json()["results"]
    assert results[0]["index"] == RELEVANT
    assert results[0]["document"] == {"text": DOCUMENTS[RELEVANT]}
    assert [r["relevance_score"] for r in results] == sorted(
        (r["relevance_score"] for r in results), reverse=True
    )

    tei = http.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "return_text": True})
    assert tei.status_code == 200, tei.text
    ranked = tei.json()
    assert ranked[0]["index"] == RELEVANT
    assert ranked[0]["text"] == DOCUMENTS[RELEVANT]
    assert sorted(r["index"] for r in ranked) == [0, 1, 2]


def assert_title_and_table(answer: dict[str, Any]) -> None:
    result = answer["result"]
    assert result["document"]["title"] == TITLE
    assert result["metadata"]["filename"] == "report.pdf"
    (table,) = result["tables"]
    assert [[cell["text"] for cell in row["cells"]] for row in table["rows"]] == ROWS


def test_a_pdf_upload_answers_its_title_and_table_now_and_as_a_job(
    http: httpx.Client,
) -> None:
    files = {"file": ("report.pdf", PDF, "application/pdf")}
    now = http.post("/v1/documents", files=files)
    assert now.status_code == 200, now.text
    assert_title_and_table(now.json())

    accepted = http.post("/v1/documents", params={"async": "true"}, files=files)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    assert accepted.headers["Location"] == f"/v1/documents/{job_id}"
    deadline = time.monotonic() + JOB_DEADLINE
    while True:
        job = http.get(f"/v1/documents/{job_id}").json()
        if job["status"] not in ("pending", "running") or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # a poll interval, not a wait for an outcome
    assert job["status"] == "succeeded", job
    assert_title_and_table(job["result"])


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/rerank", "/v1/documents"])
def test_a_missing_key_is_401_in_openais_shape(stack: GatewayProcesses, path: str) -> None:
    answer = httpx.post(f"{stack.gateway_url}{path}", json={"input": "hi"}, timeout=10.0)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_a_missing_key_is_401_in_teis_shape_on_teis_paths(stack: GatewayProcesses) -> None:
    answer = httpx.post(f"{stack.gateway_url}/rerank", json={"query": "q"}, timeout=10.0)
    assert answer.status_code == 401, answer.text
    assert isinstance(answer.json()["error"], str)


def test_a_wrong_key_is_an_authentication_error_for_the_openai_client(
    stack: GatewayProcesses,
) -> None:
    client = openai.OpenAI(base_url=f"{stack.gateway_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model=SHORT, input="hi")
