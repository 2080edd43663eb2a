"""An engine that reads the PDF's own text layer, and OCRs the pages without one: no model,
no GPU."""

from __future__ import annotations

import logging
from typing import Literal

import pypdfium2  # type: ignore[import-untyped]
from pdfplumber.page import Page

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.documents._assemble import assemble
from servicegrid.documents._page import PageData, has_text_layer, read_page
from servicegrid.documents.engine import ExtractOptions, pdf_title, stamp_metadata
from servicegrid.documents.ocr import OCR_DPI, OcrEngine, find_ocr
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

_log = logging.getLogger("servicegrid.documents")


class TextLayerEngine:
    """Structure from fonts, positions and ruling lines in the text layer (pdfplumber).

    Columns come from their gutters and are read in order; headings are told apart by
    font size and bold font names, paragraphs by vertical gaps, list items and footnotes
    by their marks, tables by their ruling lines or by the alignment of their text,
    figures by embedded images. Text inside a detected table never becomes a paragraph,
    whether or not ``options.tables`` asks for the tables.

    A page without a usable text layer (a scan) is read by ``ocr``: by default
    Tesseract when it is installed (:func:`~servicegrid.documents.ocr.find_ocr`);
    None reads text layers only. The result's metadata lists the pages OCR read
    (``ocr_pages``) and those no OCR could read (``pages_without_text``).
    """

    name: str = "text-layer"

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pages: int = DEFAULT_MAX_PAGES,
        clock: Clock = SYSTEM_CLOCK,
        ocr: OcrEngine | Literal["auto"] | None = "auto",
    ) -> None:
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self._clock = clock
        self.ocr: OcrEngine | None = find_ocr() if ocr == "auto" else ocr

    def process(self, pdf: bytes, *, filename: str, options: ExtractOptions) -> pb.DocTagsResult:
        """Extract the pages ``options`` select; raises ValidationError for unusable input."""
        started = self._clock.now()
        with open_pdf(pdf, max_bytes=self.max_bytes, max_pages=self.max_pages) as document:
            page_count = len(document.pages)
            numbers = options.check_page_range(page_count)
            scans = _Scans(pdf, self.ocr)
            try:
                pages = [scans.read(document.pages[number - 1]) for number in numbers]
            finally:
                scans.close()
            title = document.metadata.get("Title")
        result = assemble(pages, options, fallback_title=pdf_title(title))
        stamped = stamp_metadata(
            result,
            pdf,
            filename=filename,
            page_count=page_count,
            engine=self.name,
            seconds=self._clock.now() - started,
        )
        stamped.metadata.ocr_pages.extend(scans.read_by_ocr)
        stamped.metadata.pages_without_text.extend(scans.unread)
        if scans.read_by_ocr and self.ocr is not None:
            stamped.metadata.ocr_engine = self.ocr.name
        return stamped


class _Scans:
    """Reads each page from its text layer, or by OCR when it has none (rendered once)."""

    def __init__(self, pdf: bytes, ocr: OcrEngine | None) -> None:
        self.pdf = pdf
        self.ocr = ocr
        self.read_by_ocr: list[int] = []
        self.unread: list[int] = []
        self._rendered: pypdfium2.PdfDocument | None = None

    def read(self, page: Page) -> PageData:
        try:
            if has_text_layer(page):
                return _read(page)
            words = self._ocr(page.page_number) if self.ocr is not None else None
            if words is None:
                self.unread.append(page.page_number)
                return _read(page)
            self.read_by_ocr.append(page.page_number)
            return _read(page, ocr_words=words)
        finally:
            page.close()

    def _ocr(self, number: int) -> list[dict[str, object]] | None:
        """The page's words by OCR; None when the page cannot be rendered or read (a page
        tree that pdfplumber forgives and pdfium does not): it is then named as unread."""
        assert self.ocr is not None
        scale = OCR_DPI / 72
        try:
            if self._rendered is None:
                self._rendered = pypdfium2.PdfDocument(self.pdf)
            rendered = self._rendered[number - 1]
            try:
                image = rendered.render(scale=scale, grayscale=True).to_pil()
            finally:
                rendered.close()
            return self.ocr.words(image, scale=scale)
        except (pypdfium2.PdfiumError, OSError, RuntimeError, ValueError) as exc:
            _log.warning("page %d has no text layer and could not be OCR'd: %s", number, exc)
            return None

    def close(self) -> None:
        if self._rendered is not None:
            self._rendered.close()


def _read(page: Page, *, ocr_words: list[dict[str, object]] | None = None) -> PageData:
    try:
        return read_page(page, ocr_words=ocr_words)
    except PARSER_ERRORS as exc:
        raise ValidationError.for_field(
            FIELD, f"page {page.page_number} cannot be parsed ({exc})"
        ) from exc
