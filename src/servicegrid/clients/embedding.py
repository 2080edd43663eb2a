"""``EmbeddingClient``: seed 000's client for the embedding service (:50052).

.. code-block:: python

    embedding_client = EmbeddingClient(service_url="localhost:50052")
    embeddings = await embedding_client.generate_embeddings(
        texts=["This is a test document", "Another test document"],
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        config=embedding_service_pb2.EmbeddingConfig(normalize=True, batch_size=32),
    )
    for embedding in embeddings.embeddings:
        print(embedding.dimension, embedding.norm)

Obviously bad input (``texts`` that is not a non-empty list of strings, an
empty batch) raises :class:`~servicegrid.errors.ValidationError` before any RPC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from servicegrid.clients.grpc_base import (
    GrpcServiceClient,
    invalid_argument,
    require_message,
    require_strings,
)
from servicegrid.proto import common_pb2, embedding_service_pb2, embedding_service_pb2_grpc

__all__ = ["EmbeddingClient"]

_pb = embedding_service_pb2


class EmbeddingClient(GrpcServiceClient):
    """Client for ``servicegrid.v1.EmbeddingService``; every method raises a ServiceError."""

    default_service_name = "embedding"
    grpc_service_name = _pb.DESCRIPTOR.services_by_name["EmbeddingService"].full_name
    stub_class = embedding_service_pb2_grpc.EmbeddingServiceStub
    stats_method = "GetStats"

    async def generate_embeddings(
        self,
        texts: Sequence[str],
        model_name: str = "",
        config: embedding_service_pb2.EmbeddingConfig | None = None,
        *,
        timeout: float | None = None,
    ) -> embedding_service_pb2.GenerateEmbeddingsResponse:
        """One embedding per text, in order; ``model_name=""`` is the service's default model.

        ``timeout`` (seconds) bounds each attempt; the client's timeout by default.
        """
        request = self._check(texts, model_name, config)
        response = await self._call("GenerateEmbeddings", request, timeout=timeout)
        return cast(embedding_service_pb2.GenerateEmbeddingsResponse, response)

    async def generate_embeddings_batch(
        self,
        requests: embedding_service_pb2.GenerateEmbeddingsBatchRequest
        | Sequence[embedding_service_pb2.GenerateEmbeddingsRequest],
        *,
        timeout: float | None = None,
    ) -> embedding_service_pb2.GenerateEmbeddingsBatchResponse:
        """Several requests in one RPC: a ``GenerateEmbeddingsBatchRequest`` as in seed 000,
        or a list of ``GenerateEmbeddingsRequest``; one response per request, in order."""
        if isinstance(requests, _pb.GenerateEmbeddingsBatchRequest):
            items: Sequence[object] = list(requests.requests)
        elif isinstance(requests, list | tuple):
            items = requests
        else:
            raise invalid_argument(
                self.service_name,
                "requests",
                "must be a GenerateEmbeddingsBatchRequest or a list of "
                f"GenerateEmbeddingsRequest, got {type(requests).__name__}",
            )
        if not items:
            raise invalid_argument(self.service_name, "requests", "must not be empty")
        checked = []
        for index, item in enumerate(items):
            field = f"requests[{index}]"
            one = require_message(self.service_name, field, item, _pb.GenerateEmbeddingsRequest)
            require_strings(self.service_name, f"{field}.texts", list(one.texts))
            checked.append(one)
        batch = _pb.GenerateEmbeddingsBatchRequest(requests=checked)
        response = await self._call("GenerateEmbeddingsBatch", batch, timeout=timeout)
        return cast(embedding_service_pb2.GenerateEmbeddingsBatchResponse, response)

    async def list_models(
        self,
        *,
        timeout: float | None = None,
    ) -> _pb.ListModelsResponse:
        """The models the service can run: name, dimension, description, available."""
        response = await self._call("ListModels", common_pb2.ListModelsRequest(), timeout=timeout)
        return cast(_pb.ListModelsResponse, response)

    def _check(
        self, texts: object, model_name: object, config: object
    ) -> embedding_service_pb2.GenerateEmbeddingsRequest:
        """The request for these arguments, or a ValidationError naming the bad one."""
        checked = require_strings(self.service_name, "texts", texts)
        if not isinstance(model_name, str):
            raise invalid_argument(
                self.service_name,
                "model_name",
                f"must be a string, got {type(model_name).__name__}",
            )
        if config is not None:
            config = require_message(self.service_name, "config", config, _pb.EmbeddingConfig)
        return _pb.GenerateEmbeddingsRequest(texts=checked, model_name=model_name, config=config)
