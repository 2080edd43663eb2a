"""The embedding and reranking services on ONNX Runtime (SERVICEGRID_*_BACKEND=onnx), in-process,
checked against sentence-transformers on torch with the same packaged MiniLM."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")
pytest.importorskip("onnxruntime", reason="the models extra (onnxruntime) is not installed")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest_asyncio

from servicegrid.clients import EmbeddingClient, RerankingClient
from servicegrid.errors import ValidationError
from servicegrid.models import (
    MINILM_NAME,
    SentenceTransformerEmbedder,
    resolve_model_path,
)
from servicegrid.models.onnx_embedder import OnnxEmbedder
from servicegrid.proto import embedding_service_pb2
from servicegrid.services.embedding.app import EmbeddingApp, build_embedding_service
from servicegrid.services.reranking.app import build_reranking_service
from servicegrid.settings import load_settings
from tests.support.served import served
from tests.support.tiny_models import build_tiny_cross_encoder

TEXTS = [
    "This is a test document",
    "Metformin is commonly used to treat type 2 diabetes",
    "ÜñÎçødé text 🙂",
    "word " * 400,
]

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(resolve_model_path(MINILM_NAME), name=MINILM_NAME)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def app() -> AsyncIterator[EmbeddingApp]:
    settings = load_settings(device="cpu", embedding_backend="onnx", forward_workers=2)
    async with served(build_embedding_service, settings) as built:
        yield built


async def test_the_service_on_onnx_answers_as_torch_does(
    app: EmbeddingApp, minilm: SentenceTransformerEmbedder
) -> None:
    embedder = app.servicer.models[MINILM_NAME].embedder
    assert isinstance(embedder, OnnxEmbedder)
    async with EmbeddingClient(service_url=f"127.0.0.1:{app.running.port}", registry=None) as c:
        response = await c.generate_embeddings(
            texts=TEXTS, config=embedding_service_pb2.EmbeddingConfig(normalize=True)
        )
        models = await c.list_models()
    reference = minilm.encode(TEXTS, normalize=True)
    values = np.array([list(e.values) for e in response.embeddings])
    assert ((values * reference).sum(1)).min() >= 0.9999
    assert [e.truncated for e in response.embeddings] == [False, False, False, True]
    assert "ONNX Runtime (fp32)" in models.models[0].description


async def test_bad_input_is_still_refused_by_name(app: EmbeddingApp) -> None:
    async with EmbeddingClient(service_url=f"127.0.0.1:{app.running.port}", registry=None) as c:
        with pytest.raises(ValidationError, match="texts"):
            await c.generate_embeddings(texts=[])


async def test_the_bi_encoder_reranker_runs_on_onnx_int8() -> None:
    settings = load_settings(device="cpu", reranking_backend="onnx-int8")
    async with (
        served(build_reranking_service, settings) as built,
        RerankingClient(service_url=f"127.0.0.1:{built.running.port}", registry=None) as client,
    ):
        reranker = built.servicer.models[MINILM_NAME].reranker
        assert isinstance(getattr(reranker, "embedder", None), OnnxEmbedder)
        answer = await client.rerank_batch(
            query="diabetes treatment",
            documents=["Paris in spring", "Metformin treats type 2 diabetes", "bicycle tires"],
        )
    assert answer.results[0].document_index == 1


async def test_a_cross_encoder_on_onnx_is_refused_at_start(tmp_path: Path) -> None:
    tiny = build_tiny_cross_encoder(tmp_path / "tiny")
    settings = load_settings(
        device="cpu", reranking_backend="onnx", reranking_models={"tiny": str(tiny)}
    )
    with pytest.raises(ValueError, match="cross-encoder, which runs on torch only"):
        async with served(build_reranking_service, settings):
            pass
