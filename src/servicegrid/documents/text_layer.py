"""An engine that reads the PDF's own text layer: no model, no GPU, no OCR."""

from __future__ import annotations

from pdfplumber.page import Page

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.documents._assemble import assemble
from servicegrid.documents._page import PageData, read_page
from servicegrid.documents.engine import ExtractOptions, pdf_title, stamp_metadata
from servicegrid.documents.pdf_input import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PAGES,
    FIELD,
    PARSER_ERRORS,
    open_pdf,
)
from servicegrid.errors import ValidationError
from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["TextLayerEngine"]


class TextLayerEngine:
    """Structure from fonts and ruling lines in the text layer (pdfplumber).

    Headings are told apart by font size and bold font names, paragraphs by vertical
    gaps, tables by their ruling lines, figures by embedded images. A scanned page
    without a text layer yields no text. Text inside a detected table never becomes a
    paragraph, whether or not ``options.tables`` asks for the tables.
    """

    name: str = "text-layer"

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pages: int = DEFAULT_MAX_PAGES,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self._clock = clock

    def process(self, pdf: bytes, *, filename: str, options: ExtractOptions) -> pb.DocTagsResult:
        """Extract the pages ``options`` select; raises ValidationError for unusable input."""
        started = self._clock.now()
        with open_pdf(pdf, max_bytes=self.max_bytes, max_pages=self.max_pages) as document:
            page_count = len(document.pages)
            numbers = options.check_page_range(page_count)
            pages = [_read(document.pages[number - 1]) for number in numbers]
            title = document.metadata.get("Title")
        result = assemble(pages, options, fallback_title=pdf_title(title))
        return stamp_metadata(
            result,
            pdf,
            filename=filename,
            page_count=page_count,
            engine=self.name,
            seconds=self._clock.now() - started,
        )


def _read(page: Page) -> PageData:
    try:
        return read_page(page)
    except PARSER_ERRORS as exc:
        raise ValidationError.for_field(
            FIELD, f"page {page.page_number} cannot be parsed ({exc})"
        ) from exc
    finally:
        page.close()
