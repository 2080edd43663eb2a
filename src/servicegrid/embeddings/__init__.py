"""Seed 004's Production Embedding Service: embeddings in this process or from an
OpenAI-compatible server, with an LRU cache, truncation, batching and metrics.

.. code-block:: python

    from servicegrid.embeddings import ProductionEmbeddingService

    async with ProductionEmbeddingService() as service:
        result = await service.embed("Hello world")

Imports no model library: the local model loads in :meth:`ProductionEmbeddingService.start`.
"""

from servicegrid.embeddings.backends import Embedder
from servicegrid.embeddings.service import (
    DEFAULT_MODEL,
    EmbeddingResult,
    ProductionEmbeddingService,
    cosine_similarity,
)

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "EmbeddingResult",
    "ProductionEmbeddingService",
    "cosine_similarity",
]
