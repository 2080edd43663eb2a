"""The document service in-process on loopback, with the text-layer engine in worker processes.

Through DoclingVLMClient: the known-content PDF, options, page ranges, batches, bad input,
and a corpus of 200+ malformed or hostile inputs that must never take the service down.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from servicegrid.clients import DoclingVLMClient, ServiceClientConfig
from servicegrid.errors import DeadlineExceeded, FailedPrecondition, ServiceError, ValidationError
from servicegrid.proto import docling_vlm_service_pb2 as pb
from servicegrid.proto import docling_vlm_service_pb2_grpc
from servicegrid.services.documents.app import DocumentsApp, build_documents_service
from servicegrid.settings import load_settings
from tests.documents.hostile import hostile_inputs
from tests.support.served import served

pytestmark = pytest.mark.asyncio(loop_scope="module")
SERVICE = "servicegrid.v1.DoclingVLMService"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def app() -> AsyncIterator[DocumentsApp]:
    settings = load_settings(documents_workers=2, documents_max_pages=50, documents_timeout=20.0)
    async with served(build_documents_service, settings) as built:
        yield built


def client_for(app: DocumentsApp, **config: Any) -> DoclingVLMClient:
    return DoclingVLMClient(
        config=ServiceClientConfig(service_url=f"127.0.0.1:{app.running.port}", **config),
        registry=None,
    )


async def test_the_known_pdf_through_the_client(app: DocumentsApp, sample_pdf: bytes) -> None:
    async with client_for(app) as client:
        response = await client.process_pdf(pdf_content=sample_pdf, filename="sample.pdf")
    result = response.result
    assert result.metadata.filename == "sample.pdf"
    assert result.metadata.page_count == 2
    assert result.metadata.processing_model == "text-layer"
    assert result.document.title
    assert [s.level for s in result.document.sections][:2] == [1, 2]
    assert result.tables
    assert result.figures
    assert result.text_blocks
    assert response.metadata.model_name == "text-layer"


async def test_config_flags_and_page_range_are_honoured(
    app: DocumentsApp, sample_pdf: bytes
) -> None:
    config = pb.DoclingConfig(extract_tables=False, extract_figures=True, first_page=2, last_page=2)
    async with client_for(app) as client:
        response = await client.process_pdf(sample_pdf, "sample.pdf", config)
    result = response.result
    assert not result.tables
    assert not result.text_blocks
    assert {p.page_number for p in result.document.paragraphs} == {2}


async def test_a_batch_answers_in_order(app: DocumentsApp, sample_pdf: bytes) -> None:
    requests = [
        pb.ProcessPDFRequest(pdf_content=sample_pdf, filename=f"doc{i}.pdf") for i in range(3)
    ]
    async with client_for(app) as client:
        batch = await client.process_pdf_batch(pb.ProcessPDFBatchRequest(requests=requests))
    assert [r.result.metadata.filename for r in batch.responses] == [
        "doc0.pdf",
        "doc1.pdf",
        "doc2.pdf",
    ]


BAD = [
    (pb.ProcessPDFRequest(), "pdf_content"),
    (pb.ProcessPDFRequest(pdf_content=b"not a pdf at all"), "pdf_content"),
    (
        pb.ProcessPDFRequest(pdf_content=b"%PDF-1.4", config=pb.DoclingConfig(batch_size=-1)),
        "config.batch_size",
    ),
    (
        pb.ProcessPDFRequest(
            pdf_content=b"%PDF-1.4", config=pb.DoclingConfig(timeout_seconds=math.nan)
        ),
        "config.timeout_seconds",
    ),
    (
        pb.ProcessPDFRequest(pdf_content=b"%PDF-1.4", config=pb.DoclingConfig(timeout_seconds=-1)),
        "config.timeout_seconds",
    ),
    (
        pb.ProcessPDFRequest(pdf_content=b"%PDF-1.4", config=pb.DoclingConfig(first_page=0)),
        "config.first_page",
    ),
    (
        pb.ProcessPDFRequest(
            pdf_content=b"%PDF-1.4", config=pb.DoclingConfig(first_page=3, last_page=2)
        ),
        "config.last_page",
    ),
]


@pytest.mark.parametrize(("request_", "field"), BAD)
async def test_bad_input_is_invalid_argument_naming_the_field(
    app: DocumentsApp, request_: pb.ProcessPDFRequest, field: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        stub = docling_vlm_service_pb2_grpc.DoclingVLMServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.ProcessPDF(request_, timeout=30)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (failure.value.details() or "").startswith(f"{field}:")


async def test_a_page_range_past_the_document_and_too_many_pages(
    app: DocumentsApp, sample_pdf: bytes, blank_pdf: Any
) -> None:
    async with client_for(app, retry_attempts=1) as client:
        with pytest.raises(ValidationError, match="last_page"):
            await client.process_pdf(sample_pdf, "s.pdf", pb.DoclingConfig(last_page=9))
        with pytest.raises(ValidationError, match="pages"):
            await client.process_pdf(blank_pdf(51), "long.pdf")


async def test_an_engine_not_loaded_is_failed_precondition(
    app: DocumentsApp, sample_pdf: bytes
) -> None:
    async with client_for(app, retry_attempts=1) as client:
        with pytest.raises(FailedPrecondition, match="gemma3-12b"):
            await client.process_pdf(sample_pdf, "s.pdf", pb.DoclingConfig(model_name="gemma3-12b"))


async def test_a_passed_deadline_is_deadline_exceeded(app: DocumentsApp, sample_pdf: bytes) -> None:
    async with client_for(app, retry_attempts=1) as client:
        with pytest.raises(DeadlineExceeded):
            await client.process_pdf(sample_pdf, "s.pdf", pb.DoclingConfig(timeout_seconds=1e-6))
        assert (await client.process_pdf(sample_pdf, "s.pdf")).result.metadata.page_count == 2


async def test_200_hostile_inputs_never_take_the_service_down(
    app: DocumentsApp, sample_pdf: bytes
) -> None:
    corpus = hostile_inputs(sample_pdf)
    assert len(corpus) >= 200
    config = pb.DoclingConfig(
        extract_tables=True, extract_figures=True, extract_text_blocks=True, timeout_seconds=15
    )
    outcomes: dict[str, int] = {}
    async with client_for(app, retry_attempts=1, circuit_breaker_threshold=10_000) as client:

        async def one(label: str, data: bytes) -> None:
            try:
                await client.process_pdf(data, f"{label}.pdf", config)
                kind = "result"
            except ServiceError as exc:  # typed, from the one error table
                kind = type(exc).__name__
            outcomes[kind] = outcomes.get(kind, 0) + 1

        for start in range(0, len(corpus), 8):
            await asyncio.gather(*(one(label, data) for label, data in corpus[start : start + 8]))
        assert sum(outcomes.values()) == len(corpus)
        assert set(outcomes) <= {"result", "ValidationError", "DeadlineExceeded", "InternalError"}
        # still healthy, and still right
        response = await client.process_pdf(sample_pdf, "after.pdf")
        assert response.result.metadata.page_count == 2
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=10
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    print("hostile corpus outcomes:", outcomes)


async def test_health_says_whether_scanned_pages_can_be_ocrd(app: DocumentsApp) -> None:
    from servicegrid.documents.ocr import find_ocr
    from servicegrid.proto import common_pb2

    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}") as channel:
        stub = docling_vlm_service_pb2_grpc.DoclingVLMServiceStub(channel)
        health = await stub.GetHealth(common_pb2.HealthRequest(), timeout=10)
    ocr = find_ocr()
    assert health.details["ocr"] == (ocr.name if ocr is not None else "unavailable")
