"""Pages without a text layer: a two-column page scanned at 150 dpi, with noise and a 1°
skew, read by Tesseract through the same layout as any page."""

from __future__ import annotations

import difflib
import io

import numpy as np
import pypdfium2
import pytest
from fpdf import FPDF
from PIL import Image

from servicegrid.documents import ExtractOptions, TextLayerEngine
from servicegrid.documents.ocr import find_ocr
from servicegrid.proto import docling_vlm_service_pb2 as pb
from tests.documents.test_layout import LEFT, RIGHT, TABLE, two_columns

SCAN_DPI = 150


def scanned(pdf: bytes, *, seed: int = 7) -> bytes:
    """``pdf``'s first page as a noisy, slightly skewed 150 dpi image in a PDF of its own."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[0].render(scale=SCAN_DPI / 72).to_pil().convert("L")
    finally:
        document.close()
    noise = np.random.default_rng(seed).normal(0, 18, size=(image.height, image.width))
    noisy = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    skewed = Image.fromarray(noisy).rotate(1.0, fillcolor=255)
    png = io.BytesIO()
    skewed.save(png, format="PNG")
    out = FPDF(format="A4")
    out.add_page()
    out.image(io.BytesIO(png.getvalue()), x=0, y=0, w=210, h=297)
    return bytes(out.output())


def similarity(expected: str, got: str) -> float:
    return difflib.SequenceMatcher(a=expected.split(), b=got.split()).ratio()


@pytest.fixture(scope="module")
def scan() -> bytes:
    return scanned(two_columns())


def test_a_scanned_page_is_read_by_ocr_in_column_order_with_its_table(scan: bytes) -> None:
    if find_ocr() is None:
        pytest.skip("Tesseract is not installed (make installs Debian's tesseract-ocr)")
    result = TextLayerEngine().process(scan, filename="scan.pdf", options=ExtractOptions())
    assert list(result.metadata.ocr_pages) == [1]
    assert result.metadata.ocr_engine.startswith("tesseract ")
    assert list(result.metadata.pages_without_text) == []
    assert result.document.title == "Coastal Erosion Survey 2024"
    body = " ".join(p.text for p in result.document.paragraphs)
    assert similarity(" ".join([*LEFT, *RIGHT]), body) >= 0.9
    assert len(result.tables) == 1
    cells = [[cell.text for cell in row.cells] for row in result.tables[0].rows]
    assert cells[0] == list(TABLE[0])
    assert [row[0] for row in cells] == [row[0] for row in TABLE]
    assert not result.figures, "the scan itself is not a figure"


def test_without_ocr_a_scanned_page_is_named_as_unread(scan: bytes) -> None:
    result = TextLayerEngine(ocr=None).process(scan, filename="scan.pdf", options=ExtractOptions())
    assert list(result.metadata.pages_without_text) == [1]
    assert list(result.metadata.ocr_pages) == []
    assert result.metadata.ocr_engine == ""
    assert not result.document.paragraphs


def test_a_page_with_a_text_layer_is_never_ocrd() -> None:
    result = TextLayerEngine().process(two_columns(), filename="text.pdf", options=ExtractOptions())
    assert isinstance(result, pb.DocTagsResult)
    assert list(result.metadata.ocr_pages) == []
    assert list(result.metadata.pages_without_text) == []


BROKEN_PAGE_TREES = ("pages tree with a cycle", "kids not an array", "kids point nowhere")


def test_a_page_pdfium_cannot_render_is_named_unread_not_a_crash(sample_pdf: bytes) -> None:
    if find_ocr() is None:
        pytest.skip("Tesseract is not installed (make installs Debian's tesseract-ocr)")
    from tests.documents.hostile import hostile_inputs

    broken = [
        (label, data) for label, data in hostile_inputs(sample_pdf) if label in BROKEN_PAGE_TREES
    ]
    assert len(broken) == len(BROKEN_PAGE_TREES)
    for label, data in broken:
        result = TextLayerEngine().process(data, filename=f"{label}.pdf", options=ExtractOptions())
        assert list(result.metadata.ocr_pages) == [], label
        assert list(result.metadata.pages_without_text), label
