"""Native actions against the real embedding, reranking and document services, in-process.

The embedding and reranking services run the real MiniLM weights on the CPU; the document
service runs its text-layer engine. One of each serves the whole module.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pytest_asyncio
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry
from sentence_transformers import SentenceTransformer

from servicegrid.errors import ValidationError
from servicegrid.integration.native import NativeStepRunner, native_action
from servicegrid.models import MINILM_NAME, resolve_model_path
from servicegrid.services.documents.app import DocumentsApp, build_documents_service
from servicegrid.services.embedding.app import EmbeddingApp, build_embedding_service
from servicegrid.services.reranking.app import RerankingApp, build_reranking_service
from servicegrid.settings import load_settings
from servicegrid.status import StatusRegistry
from tests.documents.conftest import new_pdf, text_at

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXTS = [
    "This is a test document",
    "Another test document",
    "Metformin is commonly used to treat type 2 diabetes",
]
QUERY = "diabetes treatment"
RELEVANT = "Metformin is commonly used to treat type 2 diabetes"
DOCUMENTS = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris",
    "A guide to replacing the inner tube of a bicycle tire",
    RELEVANT,
    "Sourdough bread needs a starter that is fed with flour and water",
]
FIRST_PARAGRAPH = "Native steps call the embedding service through its typed client."
SECOND_PARAGRAPH = "A second paragraph follows after a gap."


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def embedding() -> AsyncIterator[EmbeddingApp]:
    built = await build_embedding_service(
        load_settings(device="cpu"), address="127.0.0.1:0", registry=CollectorRegistry()
    )
    await built.running.server.start()
    yield built
    await built.running.server.stop(1.0)
    await built.aclose()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def reranking() -> AsyncIterator[RerankingApp]:
    built = await build_reranking_service(
        load_settings(device="cpu"), address="127.0.0.1:0", registry=CollectorRegistry()
    )
    await built.running.server.start()
    yield built
    await built.running.server.stop(1.0)
    await built.aclose()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def documents() -> AsyncIterator[DocumentsApp]:
    built = await build_documents_service(
        load_settings(documents_workers=1, documents_timeout=20.0),
        address="127.0.0.1:0",
        registry=CollectorRegistry(),
    )
    await built.running.server.start()
    yield built
    await built.running.server.stop(1.0)
    await built.aclose()


@pytest.fixture(scope="module")
def status_registry() -> StatusRegistry:
    return StatusRegistry()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runner(
    embedding: EmbeddingApp,
    reranking: RerankingApp,
    documents: DocumentsApp,
    status_registry: StatusRegistry,
) -> AsyncIterator[NativeStepRunner]:
    endpoints = {
        "embedding": f"127.0.0.1:{embedding.running.port}",
        "reranking": f"127.0.0.1:{reranking.running.port}",
        "documents": f"127.0.0.1:{documents.running.port}",
    }
    async with NativeStepRunner(
        endpoints, settings=load_settings(), registry=status_registry
    ) as runner:
        yield runner


@pytest.fixture(scope="module")
def pdf_base64() -> str:
    pdf = new_pdf()
    pdf.add_page()
    text_at(pdf, 72, "Native Steps", size=24, style="B")
    y = text_at(pdf, 130, FIRST_PARAGRAPH, size=11)
    text_at(pdf, y + 10, SECOND_PARAGRAPH, size=11)
    return base64.b64encode(bytes(pdf.output())).decode()


def assert_output_fits(service: str, action: str, output: dict[str, Any]) -> None:
    spec = native_action(service, action)
    assert spec is not None
    Draft202012Validator(spec.output_schema).validate(output)
    json.dumps(output, allow_nan=False)  # plain JSON: no protobuf or numpy values left


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


async def test_generate_matches_sentence_transformers(runner: NativeStepRunner) -> None:
    out = await runner.run("embedding", "generate", {"texts": TEXTS}, timeout=30.0)
    assert_output_fits("embedding", "generate", out)
    assert out["model"] == MINILM_NAME
    assert out["dimensions"] == 384
    assert [len(vector) for vector in out["embeddings"]] == [384] * len(TEXTS)
    reference = SentenceTransformer(str(resolve_model_path(MINILM_NAME)), device="cpu")
    expected = reference.encode(TEXTS)
    for vector, wanted in zip(out["embeddings"], expected, strict=True):
        assert cosine(np.array(vector), wanted) >= 0.999


async def test_generate_with_model_name_and_normalize(runner: NativeStepRunner) -> None:
    out = await runner.run(
        "embedding",
        "generate",
        {"texts": ["one text"], "model_name": MINILM_NAME, "normalize": True},
    )
    (vector,) = out["embeddings"]
    assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-4)


async def test_the_service_s_own_errors_pass_through(runner: NativeStepRunner) -> None:
    with pytest.raises(ValidationError) as caught:
        await runner.run("embedding", "generate", {"texts": ["a"], "model_name": "no-such-model"})
    assert caught.value.service == "embedding"
    assert "no-such-model" in str(caught.value)


async def test_rerank_puts_the_relevant_document_first(runner: NativeStepRunner) -> None:
    out = await runner.run("reranking", "rerank", {"query": QUERY, "documents": DOCUMENTS})
    assert_output_fits("reranking", "rerank", out)
    assert out["model"] == MINILM_NAME
    results = out["results"]
    assert sorted(r["index"] for r in results) == list(range(len(DOCUMENTS)))
    assert results[0]["index"] == DOCUMENTS.index(RELEVANT)
    assert results[0]["document"] == RELEVANT
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(r["document"] == DOCUMENTS[r["index"]] for r in results)


async def test_rerank_top_k_without_documents(runner: NativeStepRunner) -> None:
    out = await runner.run(
        "reranking",
        "rerank",
        {
            "query": QUERY,
            "documents": DOCUMENTS,
            "model_name": MINILM_NAME,
            "top_k": 2,
            "return_documents": False,
        },
    )
    assert_output_fits("reranking", "rerank", out)
    assert [set(r) for r in out["results"]] == [{"index", "score"}] * 2
    assert out["results"][0]["index"] == DOCUMENTS.index(RELEVANT)


async def test_process_pdf_returns_its_text(runner: NativeStepRunner, pdf_base64: str) -> None:
    out = await runner.run(
        "documents", "process_pdf", {"pdf_base64": pdf_base64, "filename": "native.pdf"}
    )
    assert_output_fits("documents", "process_pdf", out)
    assert FIRST_PARAGRAPH in out["text"]
    assert SECOND_PARAGRAPH in out["text"]
    assert out["page_count"] == 1
    assert out["document"]["title"] == "Native Steps"
    assert out["metadata"]["filename"] == "native.pdf"
    assert out["metadata"]["processing_model"] == "text-layer"
    assert isinstance(out["metadata"]["processing_time_ms"], int)
    assert out["text_blocks"]  # extracted by default


async def test_process_pdf_config_keeps_unset_flags_on(
    runner: NativeStepRunner, pdf_base64: str
) -> None:
    wrapped = "\n".join(pdf_base64[i : i + 76] for i in range(0, len(pdf_base64), 76))
    out = await runner.run(
        "documents",
        "process_pdf",
        {"pdf_base64": wrapped, "config": {"extract_figures": False, "first_page": 1.0}},
    )
    assert FIRST_PARAGRAPH in out["text"]
    assert out["text_blocks"]  # extract_text_blocks was not given: still on
    assert out["figures"] == []


async def test_one_client_per_service(
    runner: NativeStepRunner, status_registry: StatusRegistry
) -> None:
    await runner.run("embedding", "generate", {"texts": ["once"]})
    first = status_registry.reporters()["embedding"]
    await runner.run("embedding", "generate", {"texts": ["again"]})
    assert status_registry.reporters()["embedding"] is first  # the same client, reused
    assert set(status_registry.reporters()) <= {"embedding", "reranking", "documents"}
