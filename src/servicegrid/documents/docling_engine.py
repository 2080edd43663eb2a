"""An engine that runs Docling's ``DocumentConverter`` (layout and table models; GPU)."""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass
from typing import Any

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.documents.docling_mapping import docling_to_result
from servicegrid.documents.engine import ExtractOptions, pdf_title, stamp_metadata
from servicegrid.documents.pdf_input import DEFAULT_MAX_BYTES, DEFAULT_MAX_PAGES, FIELD, open_pdf
from servicegrid.errors import FailedPrecondition, ValidationError
from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["DoclingEngine"]


@dataclass(frozen=True, slots=True)
class _Docling:
    """What this engine uses from the docling package."""

    converter_type: Any
    stream_type: Any
    pdf_format: Any
    conversion_error: type[Exception]


def _load_docling() -> _Docling:
    try:
        converter = importlib.import_module("docling.document_converter")
        models = importlib.import_module("docling.datamodel.base_models")
        exceptions = importlib.import_module("docling.exceptions")
    except ImportError as exc:
        raise FailedPrecondition(
            "the docling engine needs the docling package, which is not installed: install"
            " the 'docling' extra (pip install 'servicegrid[docling]') on a GPU machine",
            service=DoclingEngine.name,
        ) from exc
    return _Docling(
        converter_type=converter.DocumentConverter,
        stream_type=models.DocumentStream,
        pdf_format=models.InputFormat.PDF,
        conversion_error=exceptions.ConversionError,
    )


class DoclingEngine:
    """Converts the selected pages with Docling and maps its ``DoclingDocument``.

    Without ``converter``, builds a PDF-only ``DocumentConverter`` and loads its
    pipeline (models) at once, so a worker is ready only when it can convert.
    Constructing the engine raises FailedPrecondition when docling is not installed.

    Errors: unusable PDF input raises ValidationError before docling runs; docling's
    ConversionError (input it cannot read) becomes ValidationError naming
    ``pdf_content``; other exceptions (model or pipeline failures) propagate.
    """

    name: str = "docling"

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pages: int = DEFAULT_MAX_PAGES,
        clock: Clock = SYSTEM_CLOCK,
        converter: Any = None,
    ) -> None:
        self._docling = _load_docling()
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self._clock = clock
        if converter is None:
            converter = self._docling.converter_type(allowed_formats=[self._docling.pdf_format])
            try:
                converter.initialize_pipeline(self._docling.pdf_format)
            except Exception as exc:
                raise FailedPrecondition(
                    f"docling could not load its PDF pipeline ({type(exc).__name__}: {exc})",
                    service=self.name,
                ) from exc
        self._converter = converter

    def process(self, pdf: bytes, *, filename: str, options: ExtractOptions) -> pb.DocTagsResult:
        """Extract the pages ``options`` select; raises ValidationError for unusable input."""
        started = self._clock.now()
        with open_pdf(pdf, max_bytes=self.max_bytes, max_pages=self.max_pages) as document:
            page_count = len(document.pages)
            numbers = options.check_page_range(page_count)
            pages = [document.pages[number - 1] for number in numbers]
            sizes = {p.page_number: (float(p.width), float(p.height)) for p in pages}
            title = document.metadata.get("Title")
        converted = self._convert(pdf, filename, first=numbers[0], last=numbers[-1])
        result = docling_to_result(
            converted, page_sizes=sizes, options=options, fallback_title=pdf_title(title)
        )
        return stamp_metadata(
            result,
            pdf,
            filename=filename,
            page_count=page_count,
            engine=self.name,
            seconds=self._clock.now() - started,
        )

    def _convert(self, pdf: bytes, filename: str, *, first: int, last: int) -> Any:
        """Docling's ``DoclingDocument`` for pages ``first``..``last``."""
        name = filename if filename.lower().endswith(".pdf") else f"{filename or 'document'}.pdf"
        source = self._docling.stream_type(name=name, stream=io.BytesIO(pdf))
        try:
            converted = self._converter.convert(
                source,
                raises_on_error=True,
                max_num_pages=self.max_pages,
                max_file_size=self.max_bytes,
                page_range=(first, last),
            )
        except self._docling.conversion_error as exc:
            raise ValidationError.for_field(
                FIELD, f"cannot be converted by docling ({exc})"
            ) from exc
        return converted.document
