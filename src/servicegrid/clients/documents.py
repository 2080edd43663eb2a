"""``DoclingVLMClient``: seed 000's client for the document processing service (:50054).

.. code-block:: python

    docling_client = DoclingVLMClient(service_url="localhost:50054")
    result = await docling_client.process_pdf(
        pdf_content=pdf_content,
        filename="document.pdf",
        config=docling_vlm_service_pb2.DoclingConfig(extract_tables=True),
    )
    for table in result.result.tables:
        print(table.page_number, table.caption)

A config's ``timeout_seconds`` also lengthens the call's own timeout, so a
long document is not cut off by the client before the service gives up on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from servicegrid.clients.grpc_base import GrpcServiceClient, invalid_argument, require_message
from servicegrid.proto import docling_vlm_service_pb2, docling_vlm_service_pb2_grpc

__all__ = ["DoclingVLMClient"]

_pb = docling_vlm_service_pb2
_MARGIN = 5.0
"""Seconds the client waits past the service's own time limit for its answer."""


class DoclingVLMClient(GrpcServiceClient):
    """Client for ``servicegrid.v1.DoclingVLMService``; every method raises a ServiceError."""

    default_service_name = "documents"
    grpc_service_name = _pb.DESCRIPTOR.services_by_name["DoclingVLMService"].full_name
    stub_class = docling_vlm_service_pb2_grpc.DoclingVLMServiceStub
    stats_method = "GetStats"

    async def process_pdf(
        self,
        pdf_content: bytes,
        filename: str = "",
        config: _pb.DoclingConfig | None = None,
        *,
        timeout: float | None = None,
    ) -> _pb.ProcessPDFResponse:
        """Structure, tables, figures and text blocks of one PDF."""
        request = self._request(pdf_content, filename, config)
        response = await self._call(
            "ProcessPDF", request, timeout=timeout or _long_enough([request])
        )
        return cast(_pb.ProcessPDFResponse, response)

    async def process_pdf_batch(
        self,
        requests: _pb.ProcessPDFBatchRequest | Sequence[_pb.ProcessPDFRequest],
        *,
        timeout: float | None = None,
    ) -> _pb.ProcessPDFBatchResponse:
        """Several PDFs in one call; one response per request, in order."""
        items: Sequence[object]
        if isinstance(requests, _pb.ProcessPDFBatchRequest):
            items = list(requests.requests)
        elif isinstance(requests, list | tuple):
            items = requests
        else:
            raise invalid_argument(
                self.service_name,
                "requests",
                "must be a ProcessPDFBatchRequest or a list of ProcessPDFRequest, "
                f"got {type(requests).__name__}",
            )
        if not items:
            raise invalid_argument(self.service_name, "requests", "must not be empty")
        checked = []
        for index, item in enumerate(items):
            one = require_message(
                self.service_name, f"requests[{index}]", item, _pb.ProcessPDFRequest
            )
            checked.append(
                self._request(
                    one.pdf_content,
                    one.filename,
                    one.config if one.HasField("config") else None,
                    prefix=f"requests[{index}].",
                )
            )
        batch = _pb.ProcessPDFBatchRequest(requests=checked)
        response = await self._call(
            "ProcessPDFBatch", batch, timeout=timeout or _long_enough(checked)
        )
        return cast(_pb.ProcessPDFBatchResponse, response)

    def _request(
        self, pdf_content: object, filename: object, config: object, *, prefix: str = ""
    ) -> _pb.ProcessPDFRequest:
        if not isinstance(pdf_content, bytes | bytearray) or not pdf_content:
            raise invalid_argument(
                self.service_name, f"{prefix}pdf_content", "must be non-empty bytes"
            )
        if not isinstance(filename, str):
            raise invalid_argument(
                self.service_name, f"{prefix}filename", f"must be a string, got {filename!r}"
            )
        request = _pb.ProcessPDFRequest(pdf_content=bytes(pdf_content), filename=filename)
        if config is not None:
            request.config.CopyFrom(
                require_message(self.service_name, f"{prefix}config", config, _pb.DoclingConfig)
            )
        return request


def _long_enough(requests: Sequence[_pb.ProcessPDFRequest]) -> float | None:
    """The longest time limit a request sets, plus a margin; None to use the client's."""
    longest = max((r.config.timeout_seconds for r in requests), default=0.0)
    return longest + _MARGIN if longest > 0 else None
