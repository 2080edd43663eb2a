"""Seed 000's ``ServiceClientFactory``, as a thin entry point over plain functions.

.. code-block:: python

    config = ServiceClientConfig.from_settings(load_settings(), "embedding")
    embedding_client = create_embedding_client(config)
    embedding_client = ServiceClientFactory.create_embedding_client(config)   # seed 000

The whole config is used (retry, breaker, TLS, tenant), not only the URL and
timeout. Keyword ``options`` go to the client's constructor (``clock=``,
``registry=``, ``channel_options=``, ...).
"""

from __future__ import annotations

from typing import Any

from servicegrid.clients.documents import DoclingVLMClient
from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.gpu import GPUClient
from servicegrid.clients.grpc_base import ServiceClientConfig
from servicegrid.clients.reranking import RerankingClient

__all__ = [
    "ServiceClientFactory",
    "create_docling_vlm_client",
    "create_embedding_client",
    "create_gpu_client",
    "create_reranking_client",
]


def create_docling_vlm_client(config: ServiceClientConfig, **options: Any) -> DoclingVLMClient:
    """A document processing client for ``config``."""
    return DoclingVLMClient(config=config, **options)


def create_gpu_client(config: ServiceClientConfig, **options: Any) -> GPUClient:
    """A GPU management client for ``config``."""
    return GPUClient(config=config, **options)


def create_embedding_client(config: ServiceClientConfig, **options: Any) -> EmbeddingClient:
    """An embedding client for ``config``."""
    return EmbeddingClient(config=config, **options)


def create_reranking_client(config: ServiceClientConfig, **options: Any) -> RerankingClient:
    """A reranking client for ``config``."""
    return RerankingClient(config=config, **options)


class ServiceClientFactory:
    """Seed 000's name for the functions in this module."""

    create_gpu_client = staticmethod(create_gpu_client)
    create_docling_vlm_client = staticmethod(create_docling_vlm_client)
    create_embedding_client = staticmethod(create_embedding_client)
    create_reranking_client = staticmethod(create_reranking_client)
