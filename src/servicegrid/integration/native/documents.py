"""``documents.process_pdf``: extract a PDF's structure with the document service.

The PDF arrives base64-encoded; beyond its schema the input must decode to bytes that hold a
PDF header (:func:`decode_pdf`), which the check and the handler share.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final

from google.protobuf.json_format import MessageToDict

from servicegrid.clients.documents import DoclingVLMClient
from servicegrid.clients.factory import create_docling_vlm_client
from servicegrid.integration.native.action import (
    INT32,
    ClientSource,
    InputProblem,
    NativeAction,
    object_schema,
)
from servicegrid.proto import docling_vlm_service_pb2

__all__ = ["DOCUMENTS_PROCESS_PDF", "decode_pdf"]

# PDF readers accept the header after up to 1 KiB of leading junk; so does the service.
_PDF_HEADER: Final = b"%PDF-"
_PDF_HEADER_WINDOW: Final = 1024


def decode_pdf(data: Mapping[str, Any]) -> bytes:
    """The PDF bytes of ``pdf_base64``; :class:`InputProblem` naming it if they are not a PDF."""
    text = "".join(str(data["pdf_base64"]).split())
    try:
        content = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputProblem("pdf_base64", "is not valid base64") from None
    if not content:
        raise InputProblem("pdf_base64", "decodes to no bytes")
    if _PDF_HEADER not in content[: _PDF_HEADER_WINDOW + len(_PDF_HEADER)]:
        raise InputProblem("pdf_base64", "is not a PDF (no %PDF- header)")
    return content


async def _process_pdf(
    clients: ClientSource, data: dict[str, Any], per_attempt: float | None
) -> dict[str, Any]:
    content = decode_pdf(data)
    client = clients.client("documents", DoclingVLMClient, create_docling_vlm_client)
    config = None
    if "config" in data:
        # Unset extract flags mean "extract", as with no config at all (proto3 reads False).
        values = {
            "extract_tables": True,
            "extract_figures": True,
            "extract_text_blocks": True,
            **data["config"],
        }
        for name in ("batch_size", "first_page", "last_page"):
            if name in values:  # JSON Schema counts 2.0 as an integer; protobuf does not
                values[name] = int(values[name])
        config = docling_vlm_service_pb2.DoclingConfig(**values)
    response = await client.process_pdf(
        content, data.get("filename", ""), config, timeout=per_attempt
    )
    result = response.result
    output = MessageToDict(
        result,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,  # processing_time_ms as an int, not a string
    )
    paragraphs = (p.text for p in result.document.paragraphs)
    output["text"] = "\n\n".join(text for text in paragraphs if text)
    output["page_count"] = result.metadata.page_count
    return output


_DOCLING_CONFIG: Final = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string", "description": "Engine; empty: the service's default."},
        "batch_size": {**INT32, "minimum": 0},
        "timeout_seconds": {"type": "number", "minimum": 0},
        "extract_tables": {"type": "boolean", "default": True},
        "extract_figures": {"type": "boolean", "default": True},
        "extract_text_blocks": {"type": "boolean", "default": True},
        "first_page": {**INT32, "minimum": 1, "description": "1-based, inclusive."},
        "last_page": {**INT32, "minimum": 1, "description": "1-based, inclusive."},
    },
    "additionalProperties": False,
}

DOCUMENTS_PROCESS_PDF = NativeAction(
    service="documents",
    action="process_pdf",
    description=(
        "Extract structure, tables, figures and text blocks from a PDF with the document "
        "service. The output is the DocTagsResult (proto field names) plus text and page_count."
    ),
    input_schema=object_schema(
        {
            "pdf_base64": {
                "type": "string",
                "minLength": 1,
                "contentEncoding": "base64",
                "contentMediaType": "application/pdf",
                "description": "The PDF file, base64-encoded (whitespace is ignored).",
            },
            "filename": {"type": "string", "description": "Reported back in metadata."},
            "config": _DOCLING_CONFIG,
        },
        ["pdf_base64"],
        closed=True,
    ),
    output_schema=object_schema(
        {
            "text": {
                "type": "string",
                "description": "The document's paragraphs in reading order, blank-line separated.",
            },
            "page_count": {"type": "integer"},
            "document": {"type": "object", "description": "title, sections, paragraphs"},
            "tables": {"type": "array", "items": {"type": "object"}},
            "figures": {"type": "array", "items": {"type": "object"}},
            "text_blocks": {"type": "array", "items": {"type": "object"}},
            "metadata": {
                "type": "object",
                "description": "filename, page_count, processing_model, processing_time_ms, "
                "checksum",
            },
        },
        ["text", "page_count", "document", "tables", "figures", "text_blocks", "metadata"],
        closed=False,
    ),
    handler=_process_pdf,
    check=decode_pdf,
)
