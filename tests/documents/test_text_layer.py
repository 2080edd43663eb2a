"""TextLayerEngine on PDFs whose content is known."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fpdf import FPDF

from servicegrid.documents import DocumentEngine, ExtractOptions, TextLayerEngine
from servicegrid.proto import docling_vlm_service_pb2 as pb
from servicegrid.testing import FakeClock
from tests.documents.conftest import (
    IMAGE_SIZE,
    IMAGE_TOP,
    MARGIN,
    Sample,
    new_pdf,
    png_bytes,
    text_at,
)

A4 = (595.28, 841.89)


def boxes(result: pb.DocTagsResult) -> Iterator[tuple[str, pb.BoundingBox]]:
    document = result.document
    for paragraph in document.paragraphs:
        yield f"paragraph {paragraph.text!r}", paragraph.bbox
    for section in document.sections:
        for paragraph in section.paragraphs:
            yield f"section paragraph {paragraph.text!r}", paragraph.bbox
        for table in section.tables:
            yield "section table", table.bbox
        for figure in section.figures:
            yield "section figure", figure.bbox
    for table in result.tables:
        yield "table", table.bbox
    for figure in result.figures:
        yield "figure", figure.bbox
    for block in result.text_blocks:
        yield f"{block.type} {block.text!r}", block.bbox


def cell_texts(table: pb.Table) -> list[list[str]]:
    return [[cell.text for cell in row.cells] for row in table.rows]


def test_is_a_document_engine(engine: TextLayerEngine) -> None:
    assert isinstance(engine, DocumentEngine)
    assert engine.name == "text-layer"


def test_title_is_the_largest_line_on_page_one(sample: Sample) -> None:
    assert sample.result.document.title == "A Study of Text Layers"


def test_headings_become_sections_with_levels(sample: Sample) -> None:
    sections = [(s.title, s.level) for s in sample.result.document.sections]
    assert sections == [("1 Introduction", 1), ("1.1 Background", 2), ("2 Methods", 1)]


def test_a_section_runs_to_the_next_heading_at_its_level_or_higher(sample: Sample) -> None:
    intro, background, methods = sample.result.document.sections
    assert [p.text for p in intro.paragraphs] == [
        "This is the first paragraph of the introduction. It spans more than one line of "
        "text so that the grouping of lines into paragraphs is exercised.",
        "A second paragraph follows after a gap.",
        "Background paragraph text goes here.",
        "Closing paragraph of page one.",
    ]
    assert [p.text for p in background.paragraphs] == [
        "Background paragraph text goes here.",
        "Closing paragraph of page one.",
    ]
    assert len(background.tables) == 1
    assert len(background.figures) == 1
    assert [p.text for p in methods.paragraphs] == [
        "Methods paragraph on the second page.",
        "Table 1 summarises the measurements taken before the trial.",
    ]
    assert not methods.tables
    assert not methods.figures


def test_paragraphs_in_reading_order_with_pages(sample: Sample) -> None:
    paragraphs = [(p.text[:24], p.page_number) for p in sample.result.document.paragraphs]
    assert paragraphs == [
        ("This is the first paragr", 1),
        ("A second paragraph follo", 1),
        ("Background paragraph tex", 1),
        ("Closing paragraph of pag", 1),
        ("Methods paragraph on the", 2),
        ("Table 1 summarises the m", 2),
    ]


def test_paragraph_bbox_encloses_its_lines(sample: Sample) -> None:
    first = sample.result.document.paragraphs[0]
    assert first.bbox.x == pytest.approx(MARGIN, abs=4)
    assert 148 <= first.bbox.y <= 153
    # two 11 pt lines
    assert 22 <= first.bbox.height <= 30
    assert first.bbox.x + first.bbox.width <= MARGIN + 450 + 1


def test_table_cells_by_row(sample: Sample) -> None:
    (table,) = sample.result.tables
    assert cell_texts(table) == [
        ["Name", "Value", "Unit"],
        ["alpha", "1.5", "m"],
        ["beta", "2.25", "kg"],
    ]
    assert all(
        cell.row_span == 1 and cell.col_span == 1 for row in table.rows for cell in row.cells
    )
    assert table.caption == "Table 1: Sample results"
    assert table.page_number == 1
    assert table.bbox.x == pytest.approx(MARGIN, abs=1)
    assert table.bbox.width == pytest.approx(300, abs=1)
    assert table.bbox.height == pytest.approx(60, abs=1)


def test_table_text_and_captions_are_not_paragraphs(sample: Sample) -> None:
    texts = " ".join(p.text for p in sample.result.document.paragraphs)
    for word in ("Name", "alpha", "2.25", "Table 1: Sample", "Figure 1", "draft", "Page"):
        assert word not in texts


def test_figure_from_image_with_caption_below(sample: Sample) -> None:
    (figure,) = sample.result.figures
    assert figure.caption == "Figure 1: A red rectangle"
    assert figure.description == ""
    assert figure.page_number == 1
    assert (figure.bbox.x, figure.bbox.y) == pytest.approx((MARGIN, IMAGE_TOP), abs=0.5)
    assert (figure.bbox.width, figure.bbox.height) == pytest.approx(IMAGE_SIZE, abs=0.5)


def test_text_blocks_typed_in_reading_order(sample: Sample) -> None:
    blocks = [(b.type, b.page_number) for b in sample.result.text_blocks]
    assert blocks == [
        ("page_header", 1),
        ("title", 1),
        ("heading", 1),
        ("paragraph", 1),
        ("paragraph", 1),
        ("heading", 1),
        ("paragraph", 1),
        ("caption", 1),
        ("table", 1),
        ("figure", 1),
        ("caption", 1),
        ("paragraph", 1),
        ("page_footer", 1),
        ("page_header", 2),
        ("heading", 2),
        ("paragraph", 2),
        ("paragraph", 2),
        ("page_footer", 2),
    ]
    table_block = sample.result.text_blocks[8]
    assert table_block.text.splitlines()[1] == "alpha | 1.5 | m"


def test_running_header_and_footer(sample: Sample) -> None:
    running = [(b.type, b.text) for b in sample.result.text_blocks if b.type.startswith("page_")]
    assert running == [
        ("page_header", "Text Layers - working draft"),
        ("page_footer", "Page 1"),
        ("page_header", "Text Layers - working draft"),
        ("page_footer", "Page 2"),
    ]


def test_every_bbox_lies_inside_its_page(sample: Sample) -> None:
    width, height = A4
    seen = 0
    for what, box in boxes(sample.result):
        seen += 1
        assert box.width > 0, what
        assert box.height > 0, what
        assert box.x >= 0, what
        assert box.y >= 0, what
        assert box.x + box.width <= width + 0.01, what
        assert box.y + box.height <= height + 0.01, what
    assert seen > 20


def test_bbox_of_content_past_the_page_edge_is_clamped(engine: TextLayerEngine) -> None:
    pdf = new_pdf()
    pdf.add_page()
    text_at(pdf, 72, "Inside the page.", size=11)
    pdf.image(png_bytes(), x=500, y=780, w=200, h=200)
    result = engine.process(bytes(pdf.output()), filename="edge.pdf", options=ExtractOptions())
    (figure,) = result.figures
    assert figure.bbox.x == pytest.approx(500, abs=0.5)
    assert figure.bbox.x + figure.bbox.width == pytest.approx(A4[0], abs=0.01)
    assert figure.bbox.y + figure.bbox.height == pytest.approx(A4[1], abs=0.01)


@pytest.mark.parametrize(
    ("options", "empty"),
    [
        (ExtractOptions(tables=False), "tables"),
        (ExtractOptions(figures=False), "figures"),
        (ExtractOptions(text_blocks=False), "text_blocks"),
    ],
)
def test_options_turn_lists_off(
    engine: TextLayerEngine, sample: Sample, options: ExtractOptions, empty: str
) -> None:
    result = engine.process(sample.data, filename="sample.pdf", options=options)
    assert len(getattr(result, empty)) == 0
    for kept in {"tables", "figures", "text_blocks"} - {empty}:
        assert len(getattr(result, kept)) > 0
    if empty in {"tables", "figures"}:
        assert all(len(getattr(section, empty)) == 0 for section in result.document.sections)
    # turning output off does not change the paragraphs
    assert result.document.paragraphs == sample.result.document.paragraphs


def test_page_range_of_page_two_only(engine: TextLayerEngine, sample: Sample) -> None:
    options = ExtractOptions(first_page=2, last_page=2)
    result = engine.process(sample.data, filename="sample.pdf", options=options)
    assert result.document.title == ""
    assert [(s.title, s.level) for s in result.document.sections] == [("2 Methods", 1)]
    assert {p.page_number for p in result.document.paragraphs} == {2}
    assert {b.page_number for b in result.text_blocks} == {2}
    assert not result.tables
    assert not result.figures
    assert result.metadata.page_count == 2


def test_page_range_of_page_one_only(engine: TextLayerEngine, sample: Sample) -> None:
    result = engine.process(sample.data, filename="sample.pdf", options=ExtractOptions(last_page=1))
    assert result.document.title == "A Study of Text Layers"
    assert [s.title for s in result.document.sections] == ["1 Introduction", "1.1 Background"]
    assert {p.page_number for p in result.document.paragraphs} == {1}
    assert len(result.tables) == 1
    assert len(result.figures) == 1


class _SteppingClock(FakeClock):
    """Moves a quarter of a second on every read."""

    def now(self) -> float:
        self.advance(0.25)
        return super().now()


def test_metadata(sample: Sample) -> None:
    result = TextLayerEngine(clock=_SteppingClock()).process(
        sample.data, filename="report.pdf", options=ExtractOptions()
    )
    metadata = result.metadata
    assert metadata.filename == "report.pdf"
    assert metadata.page_count == 2
    assert metadata.processing_model == "text-layer"
    assert metadata.processing_time_ms == 250
    assert metadata.checksum == hashlib.sha256(sample.data).hexdigest()


def test_merged_cells_report_their_spans(engine: TextLayerEngine) -> None:
    pdf = new_pdf()
    pdf.add_page()
    pdf.set_font("Helvetica", "", 11)
    x, y = MARGIN, 100.0
    pdf.set_xy(x, y)
    pdf.cell(200, 20, "Group", border=1)
    pdf.cell(100, 20, "Z", border=1)
    pdf.set_xy(x, y + 20)
    pdf.cell(100, 40, "tall", border=1)
    pdf.cell(100, 20, "b1", border=1)
    pdf.cell(100, 20, "c1", border=1)
    pdf.set_xy(x + 100, y + 40)
    pdf.cell(100, 20, "b2", border=1)
    pdf.cell(100, 20, "c2", border=1)
    result = engine.process(bytes(pdf.output()), filename="m.pdf", options=ExtractOptions())
    (table,) = result.tables
    spans = [[(c.text, c.row_span, c.col_span) for c in row.cells] for row in table.rows]
    assert spans == [
        [("Group", 1, 2), ("Z", 1, 1)],
        [("tall", 2, 1), ("b1", 1, 1), ("c1", 1, 1)],
        [("b2", 1, 1), ("c2", 1, 1)],
    ]


def test_bold_body_size_line_is_the_lowest_heading_level(engine: TextLayerEngine) -> None:
    pdf = new_pdf()
    pdf.add_page()
    text_at(pdf, 72, "Report", size=24, style="B")
    text_at(pdf, 120, "1 Scope", size=16, style="B")
    text_at(pdf, 150, "Scope text of the report, long enough to be the body.", size=11)
    text_at(pdf, 180, "Limits", size=11, style="B")
    text_at(pdf, 200, "Limit text, again in the regular body font and size.", size=11)
    result = engine.process(bytes(pdf.output()), filename="b.pdf", options=ExtractOptions())
    assert result.document.title == "Report"
    assert [(s.title, s.level) for s in result.document.sections] == [
        ("1 Scope", 1),
        ("Limits", 2),
    ]


def test_title_falls_back_to_document_metadata(engine: TextLayerEngine) -> None:
    pdf = new_pdf()
    pdf.set_title("Plain Notes")
    pdf.add_page()
    text_at(pdf, 72, "Only body text here, all of it in one size.", size=11)
    result = engine.process(bytes(pdf.output()), filename="n.pdf", options=ExtractOptions())
    assert result.document.title == "Plain Notes"
    assert [p.text for p in result.document.paragraphs] == [
        "Only body text here, all of it in one size."
    ]


def test_owner_password_only_pdf_is_readable(engine: TextLayerEngine) -> None:
    pdf: FPDF = new_pdf()
    pdf.set_encryption(owner_password="owner")
    pdf.add_page()
    text_at(pdf, 72, "Readable without a password.", size=11)
    result = engine.process(bytes(pdf.output()), filename="o.pdf", options=ExtractOptions())
    assert [p.text for p in result.document.paragraphs] == ["Readable without a password."]
