"""``RerankingClient``: seed 000's client for the reranking service (:50053).

.. code-block:: python

    reranking_client = RerankingClient(service_url="localhost:50053")
    results = await reranking_client.rerank_batch(
        query="diabetes treatment",
        documents=["Metformin is ...", "Insulin therapy is ..."],
        config=reranking_service_pb2.RerankingConfig(return_documents=True),
    )
    for result in results.results:          # highest score first
        print(result.document_index, result.score)

Obviously bad input (an empty query, ``documents`` that is not a non-empty
list of strings, an empty batch) raises
:class:`~servicegrid.errors.ValidationError` before any RPC.
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
from servicegrid.proto import common_pb2, reranking_service_pb2, reranking_service_pb2_grpc

__all__ = ["RerankingClient"]

_pb = reranking_service_pb2


class RerankingClient(GrpcServiceClient):
    """Client for ``servicegrid.v1.RerankingService``; every method raises a ServiceError."""

    default_service_name = "reranking"
    grpc_service_name = _pb.DESCRIPTOR.services_by_name["RerankingService"].full_name
    stub_class = reranking_service_pb2_grpc.RerankingServiceStub
    stats_method = "GetStats"

    async def rerank_batch(
        self,
        query: str,
        documents: Sequence[str],
        config: reranking_service_pb2.RerankingConfig | None = None,
        *,
        timeout: float | None = None,
    ) -> reranking_service_pb2.RerankBatchResponse:
        """Score each document against ``query``; results come highest score first.

        ``timeout`` (seconds) bounds each attempt; the client's timeout by default.
        """
        request = self._check(query, documents, config)
        response = await self._call("RerankBatch", request, timeout=timeout)
        return cast(reranking_service_pb2.RerankBatchResponse, response)

    async def rerank_multiple_batches(
        self,
        requests: reranking_service_pb2.RerankMultipleBatchesRequest
        | Sequence[reranking_service_pb2.RerankBatchRequest],
        *,
        timeout: float | None = None,
    ) -> reranking_service_pb2.RerankMultipleBatchesResponse:
        """Several queries in one RPC: a list of ``RerankBatchRequest`` as in seed 000, or a
        ``RerankMultipleBatchesRequest``; one response per request, in order."""
        if isinstance(requests, _pb.RerankMultipleBatchesRequest):
            items: Sequence[object] = list(requests.requests)
        elif isinstance(requests, list | tuple):
            items = requests
        else:
            raise invalid_argument(
                self.service_name,
                "requests",
                "must be a list of RerankBatchRequest or a RerankMultipleBatchesRequest, "
                f"got {type(requests).__name__}",
            )
        if not items:
            raise invalid_argument(self.service_name, "requests", "must not be empty")
        checked = []
        for index, item in enumerate(items):
            field = f"requests[{index}]"
            one = require_message(self.service_name, field, item, _pb.RerankBatchRequest)
            self._check(one.query, list(one.documents), None, prefix=f"{field}.")
            checked.append(one)
        batch = _pb.RerankMultipleBatchesRequest(requests=checked)
        response = await self._call("RerankMultipleBatches", batch, timeout=timeout)
        return cast(reranking_service_pb2.RerankMultipleBatchesResponse, response)

    async def list_models(
        self,
        *,
        timeout: float | None = None,
    ) -> reranking_service_pb2.RerankingListModelsResponse:
        """The models the service can run: name, description, available, max_sequence_length."""
        response = await self._call("ListModels", common_pb2.ListModelsRequest(), timeout=timeout)
        return cast(reranking_service_pb2.RerankingListModelsResponse, response)

    def _check(
        self, query: object, documents: object, config: object, *, prefix: str = ""
    ) -> reranking_service_pb2.RerankBatchRequest:
        """The request for these arguments, or a ValidationError naming the bad one."""
        if not isinstance(query, str) or not query.strip():
            raise invalid_argument(
                self.service_name, f"{prefix}query", f"must be a non-empty string, got {query!r}"
            )
        texts = require_strings(self.service_name, f"{prefix}documents", documents)
        if config is not None:
            config = require_message(
                self.service_name, f"{prefix}config", config, _pb.RerankingConfig
            )
        return _pb.RerankBatchRequest(query=query, documents=texts, config=config)
