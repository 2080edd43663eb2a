"""Model adapters: the only place servicegrid imports torch, sentence-transformers and ONNX Runtime.

Install with the ``models`` extra (torch first: ``pip install torch==2.13.0``).
Each adapter splits one model call into ``preprocess`` (tokenize, CPU),
``forward`` (the model) and ``postprocess`` (results per item), the three
stages :class:`servicegrid.batching.BatchEngine` overlaps.

The names below load on first use, so the leaf modules (``models.cache``,
``models.packaged``) import without torch: the remote embedding client uses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servicegrid._lazy import lazy_exports

if TYPE_CHECKING:
    from servicegrid.models.embedder import Embedding, EmbedItem, SentenceTransformerEmbedder
    from servicegrid.models.local import LocalEmbeddingConfig, LocalEmbeddingModel, ModelBackend
    from servicegrid.models.onnx_embedder import OnnxEmbedder
    from servicegrid.models.packaged import MINILM_NAME, packaged_model_path, resolve_model_path
    from servicegrid.models.reranker import BiEncoderReranker, CrossEncoderReranker, RerankItem
    from servicegrid.models.threads import forward_workers_for, set_cpu_threads, usable_cores

_EXPORTS = {
    "Embedding": "servicegrid.models.embedder",
    "EmbedItem": "servicegrid.models.embedder",
    "SentenceTransformerEmbedder": "servicegrid.models.embedder",
    "LocalEmbeddingConfig": "servicegrid.models.local",
    "LocalEmbeddingModel": "servicegrid.models.local",
    "ModelBackend": "servicegrid.models.local",
    "OnnxEmbedder": "servicegrid.models.onnx_embedder",
    "MINILM_NAME": "servicegrid.models.packaged",
    "packaged_model_path": "servicegrid.models.packaged",
    "resolve_model_path": "servicegrid.models.packaged",
    "BiEncoderReranker": "servicegrid.models.reranker",
    "CrossEncoderReranker": "servicegrid.models.reranker",
    "RerankItem": "servicegrid.models.reranker",
    "forward_workers_for": "servicegrid.models.threads",
    "set_cpu_threads": "servicegrid.models.threads",
    "usable_cores": "servicegrid.models.threads",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "MINILM_NAME",
    "BiEncoderReranker",
    "CrossEncoderReranker",
    "EmbedItem",
    "Embedding",
    "LocalEmbeddingConfig",
    "LocalEmbeddingModel",
    "ModelBackend",
    "OnnxEmbedder",
    "RerankItem",
    "SentenceTransformerEmbedder",
    "forward_workers_for",
    "packaged_model_path",
    "resolve_model_path",
    "set_cpu_threads",
    "usable_cores",
]
