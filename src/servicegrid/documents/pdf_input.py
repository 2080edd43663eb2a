"""Check PDF bytes before any extraction runs, open them for pdfplumber, render pages."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import Final

import pdfplumber
import pypdfium2 as pdfium  # type: ignore[import-untyped]
from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.psexceptions import PSException
from pdfplumber.pdf import PDF
from pdfplumber.utils.exceptions import MalformedPDFException, PdfminerException

from servicegrid.errors import ValidationError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PAGES",
    "FIELD",
    "PARSER_ERRORS",
    "PageImage",
    "open_pdf",
    "render_page",
]

DEFAULT_MAX_BYTES: Final = 50 * 1024 * 1024
DEFAULT_MAX_PAGES: Final = 500

FIELD: Final = "pdf_content"

# A header may follow up to 1 KiB of leading junk, as PDF readers accept.
_HEADER: Final = b"%PDF-"
_HEADER_WINDOW: Final = 1024

# What pdfminer raises on damaged input, directly or while it parses a page lazily
# (PSException covers its PDF syntax and EOF errors).
PARSER_ERRORS: Final[tuple[type[BaseException], ...]] = (
    PdfminerException,
    MalformedPDFException,
    PSException,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AssertionError,
    struct.error,
    zlib.error,
)

# PDFium is not thread-safe; every call into it goes through this lock.
_PDFIUM_LOCK = threading.Lock()


def open_pdf(pdf: bytes, *, max_bytes: int, max_pages: int) -> PDF:
    """Validate ``pdf`` and open it; the caller closes the result.

    Raises ValidationError, naming ``pdf_content``, for empty, oversized, non-PDF,
    password-protected, truncated or malformed input and for too many pages.
    """
    if not pdf:
        raise ValidationError.for_field(FIELD, "is empty")
    if len(pdf) > max_bytes:
        raise ValidationError.for_field(
            FIELD, f"is {len(pdf)} bytes; at most {max_bytes} are allowed"
        )
    if _HEADER not in pdf[: _HEADER_WINDOW + len(_HEADER)]:
        raise ValidationError.for_field(FIELD, "is not a PDF (no %PDF- header)")
    _check_with_pdfium(pdf, max_pages=max_pages)
    return _open_with_pdfplumber(pdf, max_pages=max_pages)


def _check_with_pdfium(pdf: bytes, *, max_pages: int) -> None:
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(pdf)
        except pdfium.PdfiumError as exc:
            raise _load_error(exc) from exc
        try:
            page_count = len(document)
        finally:
            document.close()
    _check_page_count(page_count, max_pages=max_pages)


def _load_error(exc: pdfium.PdfiumError) -> ValidationError:
    code = getattr(exc, "err_code", None)
    if code == pdfium.raw.FPDF_ERR_PASSWORD:
        return ValidationError.for_field(FIELD, "is encrypted and needs a password")
    if code == pdfium.raw.FPDF_ERR_SECURITY:
        return ValidationError.for_field(FIELD, "is encrypted with an unsupported security handler")
    return ValidationError.for_field(
        FIELD, f"is truncated or malformed and cannot be parsed ({exc})"
    )


def _open_with_pdfplumber(pdf: bytes, *, max_pages: int) -> PDF:
    try:
        document = pdfplumber.open(io.BytesIO(pdf))
    except PARSER_ERRORS as exc:
        raise _parse_error(exc) from exc
    try:
        page_count = len(document.pages)
    except PARSER_ERRORS as exc:
        # Not closed: PDF.close() walks the pages again and would raise the same error.
        raise _parse_error(exc) from exc
    try:
        _check_page_count(page_count, max_pages=max_pages)
    except ValidationError:
        document.close()
        raise
    return document


def _parse_error(exc: BaseException) -> ValidationError:
    cause = exc.args[0] if isinstance(exc, PdfminerException) and exc.args else exc
    if isinstance(cause, PDFPasswordIncorrect):
        return ValidationError.for_field(FIELD, "is encrypted and needs a password")
    if isinstance(cause, PDFEncryptionError):
        return ValidationError.for_field(
            FIELD, f"is encrypted in a way that cannot be read ({cause})"
        )
    detail = str(cause) or type(cause).__name__
    return ValidationError.for_field(
        FIELD, f"is truncated or malformed and cannot be parsed ({detail})"
    )


def _check_page_count(page_count: int, *, max_pages: int) -> None:
    if page_count < 1:
        raise ValidationError.for_field(FIELD, "has no pages")
    if page_count > max_pages:
        raise ValidationError.for_field(
            FIELD, f"has {page_count} pages; at most {max_pages} are allowed"
        )


@dataclass(frozen=True, slots=True)
class PageImage:
    """One rendered page: PNG bytes and the page's size in points, as rendered."""

    number: int
    png: bytes
    width: float
    height: float


def render_page(pdf: bytes, number: int, *, dpi: int) -> PageImage:
    """Render 1-based page ``number`` of ``pdf`` (already checked by open_pdf) to PNG.

    The size includes the page's rotation, so it matches the image. Raises
    ValidationError, naming ``pdf_content``, when PDFium cannot render the page.
    """
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(pdf)
            try:
                page = document[number - 1]
                try:
                    width, height = page.get_size()
                    bitmap = page.render(scale=dpi / 72)
                    # to_pil may share the bitmap's buffer, which PDFium frees on close.
                    image = bitmap.to_pil().copy()
                    bitmap.close()
                finally:
                    page.close()
            finally:
                document.close()
        except pdfium.PdfiumError as exc:
            raise ValidationError.for_field(
                FIELD, f"page {number} cannot be rendered ({exc})"
            ) from exc
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return PageImage(number=number, png=buffer.getvalue(), width=float(width), height=float(height))
