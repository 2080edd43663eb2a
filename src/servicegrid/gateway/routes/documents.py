"""``POST /v1/documents`` and ``GET /v1/documents/{id}``: PDF to DocTags, now or as a job.

The app provides ``state.settings``, ``state.clients.documents`` (a
``DoclingVLMClient``, or None when unconfigured) and ``state.document_jobs``.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from servicegrid.clients import DoclingVLMClient
from servicegrid.clock import iso_utc
from servicegrid.errors import PayloadTooLarge, ServiceUnavailableError, ValidationError
from servicegrid.gateway.document_jobs import DocumentJob, DocumentJobs, JobStatus
from servicegrid.gateway.routes import clients_of, settings_of
from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["documents_router", "read_pdf"]

_PDF_MAGIC = b"%PDF-"
_MAGIC_WINDOW = 1024
"""PDF readers accept junk before the header within the first KiB, so we do too."""


def documents_router() -> APIRouter:
    """The documents routes; errors are raised as ServiceErrors for the app's handlers."""
    router = APIRouter(tags=["documents"])

    @router.post(
        "/v1/documents",
        summary="Convert a PDF to DocTags, now or as a job (?async=true)",
        responses={202: {"description": "Job accepted; poll the URL in Location"}},
    )
    async def create_document(
        request: Request,
        response: Response,
        file: Annotated[UploadFile | None, File(description="The PDF")] = None,
        model: Annotated[str | None, Form(description="Engine; default: the service's")] = None,
        extract_tables: Annotated[bool, Form()] = True,
        extract_figures: Annotated[bool, Form()] = True,
        extract_text_blocks: Annotated[bool, Form()] = True,
        first_page: Annotated[int | None, Form(description="1-based, inclusive")] = None,
        last_page: Annotated[int | None, Form(description="1-based, inclusive")] = None,
        run_async: Annotated[bool, Query(alias="async")] = False,
    ) -> dict[str, Any]:
        settings = settings_of(request)
        pdf, filename = await read_pdf(file, max_mb=settings.documents_max_mb)
        config = pb.DoclingConfig(
            model_name=model or "",
            extract_tables=extract_tables,
            extract_figures=extract_figures,
            extract_text_blocks=extract_text_blocks,
        )
        for name, page in (("first_page", first_page), ("last_page", last_page)):
            if page is not None:
                if page < 1:
                    raise ValidationError.for_field(name, f"must be >= 1, got {page}")
                setattr(config, name, page)
        client = _client(request)

        async def convert() -> dict[str, Any]:
            answer = await client.process_pdf(pdf, filename, config)
            return _plain(answer)

        if not run_async:
            return await convert()
        job = await _jobs(request).submit(filename, convert)
        poll = f"/v1/documents/{job.id}"
        response.status_code = 202
        response.headers["Location"] = poll
        return {"id": job.id, "status": job.status.value, "poll": poll}

    @router.get("/v1/documents/{job_id}", summary="A document job and, once done, its result")
    async def get_document(request: Request, job_id: str) -> dict[str, Any]:
        return _job_body(await _jobs(request).get(job_id))

    return router


async def read_pdf(file: UploadFile | None, *, max_mb: int) -> tuple[bytes, str]:
    if file is None:
        raise ValidationError.for_field("file", "is required: a PDF sent as multipart form data")
    limit = max_mb * 1024 * 1024
    if file.size is not None and file.size > limit:
        raise _too_large(file.size, max_mb)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise _too_large(None, max_mb)
    if not data:
        raise ValidationError.for_field("file", "is empty")
    if _PDF_MAGIC not in data[:_MAGIC_WINDOW]:
        raise ValidationError.for_field("file", "is not a PDF (no %PDF- header)")
    return data, file.filename or "document.pdf"


def _too_large(size: int | None, max_mb: int) -> PayloadTooLarge:
    got = f" ({size / 1024 / 1024:.1f} MiB)" if size is not None else ""
    return PayloadTooLarge(
        f"file: is larger than SERVICEGRID_DOCUMENTS_MAX_MB ({max_mb} MiB){got}",
        details={"field": "file"},
    )


def _client(request: Request) -> DoclingVLMClient:
    client = clients_of(request).documents
    if client is None:
        raise ServiceUnavailableError(
            "no document service configured: set DOCLING_VLM_SERVICE_URL",
            service_name="documents",
        )
    return client


def _jobs(request: Request) -> DocumentJobs:
    jobs = getattr(request.app.state, "document_jobs", None)
    if jobs is None:
        raise ServiceUnavailableError("the document job store is not open", service_name="gateway")
    return cast(DocumentJobs, jobs)


def _job_body(job: DocumentJob) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status.value,
        "filename": job.filename,
        "created_at": iso_utc(job.created_at),
        "updated_at": iso_utc(job.updated_at),
    }
    if job.status is JobStatus.SUCCEEDED:
        body["result"] = job.result
    elif job.status is JobStatus.FAILED:
        body["error"] = job.error
    return body


def _plain(message: Message) -> dict[str, Any]:
    """The message as JSON, every field present.

    Unlike ``MessageToDict``, int64 stays a number and float32 loses its binary noise.
    """
    body: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        repeated = field.is_repeated
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if repeated:
                body[field.name] = [_plain(item) for item in value]
            else:
                body[field.name] = _plain(value) if message.HasField(field.name) else None
        elif field.has_presence and not repeated and not message.HasField(field.name):
            body[field.name] = None
        elif field.type == FieldDescriptor.TYPE_FLOAT:
            body[field.name] = [_short(v) for v in value] if repeated else _short(value)
        else:
            body[field.name] = list(value) if repeated else value
    return body


def _short(value: float) -> float:
    return float(f"{value:.7g}")
