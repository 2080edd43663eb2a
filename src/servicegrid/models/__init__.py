"""Model adapters: the only place servicegrid imports torch and sentence-transformers.

Install with the ``models`` extra (torch first: ``pip install torch==2.13.0``).
Each adapter splits one model call into ``preprocess`` (tokenize, CPU),
``forward`` (the model) and ``postprocess`` (results per item), the three
stages :class:`servicegrid.batching.BatchEngine` overlaps.
"""

from servicegrid.models.embedder import Embedding, EmbedItem, SentenceTransformerEmbedder
from servicegrid.models.packaged import MINILM_NAME, packaged_model_path, resolve_model_path
from servicegrid.models.reranker import BiEncoderReranker, CrossEncoderReranker, RerankItem
from servicegrid.models.threads import forward_workers_for, set_cpu_threads, usable_cores

__all__ = [
    "MINILM_NAME",
    "BiEncoderReranker",
    "CrossEncoderReranker",
    "EmbedItem",
    "Embedding",
    "RerankItem",
    "SentenceTransformerEmbedder",
    "forward_workers_for",
    "packaged_model_path",
    "resolve_model_path",
    "set_cpu_threads",
    "usable_cores",
]
