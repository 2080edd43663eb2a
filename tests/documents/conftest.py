"""PDFs with known content, written with fpdf2."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fpdf import FPDF

from servicegrid.documents import ExtractOptions, TextLayerEngine
from servicegrid.proto import docling_vlm_service_pb2 as pb

MARGIN = 72.0
IMAGE_TOP = 380.0
IMAGE_SIZE = (120.0, 90.0)


def png_bytes(width: int = 8, height: int = 6) -> bytes:
    """A small solid red RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\xc8\x1e\x1e" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def new_pdf() -> FPDF:
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_creator("servicegrid tests")
    return pdf


def text_at(pdf: FPDF, y: float, text: str, *, size: float, style: str = "") -> float:
    """Write ``text`` at ``y`` (wrapping at 450 pt); returns the y below it."""
    pdf.set_font("Helvetica", style, size)
    pdf.set_xy(MARGIN, y)
    pdf.multi_cell(450, size * 1.3, text)
    return float(pdf.get_y())


def running_lines(pdf: FPDF, number: int) -> None:
    text_at(pdf, 24, "Text Layers - working draft", size=9)
    text_at(pdf, 800, f"Page {number}", size=9)


def write_sample(pdf: FPDF) -> None:
    """Two pages: title, headings at two levels, paragraphs, a ruled table, a figure.

    Each page also has a running header and a page-number footer.
    """
    pdf.add_page()
    running_lines(pdf, 1)
    text_at(pdf, 72, "A Study of Text Layers", size=24, style="B")
    text_at(pdf, 120, "1 Introduction", size=18, style="B")
    y = text_at(
        pdf,
        150,
        "This is the first paragraph of the introduction. It spans more than one line "
        "of text so that the grouping of lines into paragraphs is exercised.",
        size=11,
    )
    y = text_at(pdf, y + 10, "A second paragraph follows after a gap.", size=11)
    y = text_at(pdf, y + 14, "1.1 Background", size=14, style="B")
    y = text_at(pdf, y + 8, "Background paragraph text goes here.", size=11)
    y = text_at(pdf, y + 10, "Table 1: Sample results", size=10)
    rows = [["Name", "Value", "Unit"], ["alpha", "1.5", "m"], ["beta", "2.25", "kg"]]
    for index, row in enumerate(rows):
        pdf.set_font("Helvetica", "B" if index == 0 else "", 11)
        pdf.set_xy(MARGIN, y + 4 + index * 20)
        for text in row:
            pdf.cell(100, 20, text, border=1)
    pdf.image(png_bytes(), x=MARGIN, y=IMAGE_TOP, w=IMAGE_SIZE[0], h=IMAGE_SIZE[1])
    text_at(pdf, IMAGE_TOP + IMAGE_SIZE[1] + 6, "Figure 1: A red rectangle", size=10)
    text_at(pdf, 540, "Closing paragraph of page one.", size=11)

    pdf.add_page()
    running_lines(pdf, 2)
    text_at(pdf, 72, "2 Methods", size=18, style="B")
    text_at(pdf, 104, "Methods paragraph on the second page.", size=11)
    text_at(pdf, 140, "Table 1 summarises the measurements taken before the trial.", size=11)


@dataclass(frozen=True)
class Sample:
    data: bytes
    result: pb.DocTagsResult


@pytest.fixture(scope="session")
def sample_pdf() -> bytes:
    pdf = new_pdf()
    write_sample(pdf)
    return bytes(pdf.output())


@pytest.fixture(scope="session")
def sample(sample_pdf: bytes) -> Sample:
    result = TextLayerEngine().process(sample_pdf, filename="sample.pdf", options=ExtractOptions())
    return Sample(data=sample_pdf, result=result)


@pytest.fixture
def engine() -> TextLayerEngine:
    return TextLayerEngine()


@pytest.fixture
def blank_pdf() -> Callable[[int], bytes]:
    """``blank_pdf(n)``: a PDF with ``n`` pages and a line of text on each."""

    def build(pages: int) -> bytes:
        pdf = new_pdf()
        for number in range(1, pages + 1):
            pdf.add_page()
            text_at(pdf, 72, f"Page {number} text.", size=11)
        return bytes(pdf.output())

    return build
