"""docling_to_result on DoclingDocuments built with docling-core, and DoclingEngine around it.

The engine runs against stand-in ``docling`` modules (docling itself is never installed
here); the documents it maps are real docling-core documents.
"""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

pytest.importorskip(
    "docling_core",
    reason=(
        "docling-core is not installed: the docling extra is for GPU deployments"
        " (pip install 'servicegrid[docling]')"
    ),
)

from docling_core.types.doc import (
    BoundingBox,
    ContentLayer,
    CoordOrigin,
    DescriptionAnnotation,
    DescriptionMetaField,
    DocItemLabel,
    DoclingDocument,
    PictureMeta,
    ProvenanceItem,
    Size,
    TableCell,
    TableData,
)

from servicegrid.documents import DocumentEngine, ExtractOptions
from servicegrid.documents.docling_engine import DoclingEngine
from servicegrid.documents.docling_mapping import docling_to_result
from servicegrid.errors import FailedPrecondition, ValidationError
from servicegrid.proto import docling_vlm_service_pb2 as pb
from servicegrid.testing import FakeClock

WIDTH, HEIGHT = 612.0, 792.0
SIZES = {1: (WIDTH, HEIGHT), 2: (WIDTH, HEIGHT)}


def prov(page: int, l: float, t: float, r: float, b: float, *, bottom_left: bool = False) -> Any:  # noqa: E741
    origin = CoordOrigin.BOTTOMLEFT if bottom_left else CoordOrigin.TOPLEFT
    box = BoundingBox(l=l, t=t, r=r, b=b, coord_origin=origin)
    return ProvenanceItem(page_no=page, bbox=box, charspan=(0, 0))


def cell(text: str, row: int, col: int, *, rows: int = 1, cols: int = 1) -> TableCell:
    return TableCell(
        text=text,
        row_span=rows,
        col_span=cols,
        start_row_offset_idx=row,
        end_row_offset_idx=row + rows,
        start_col_offset_idx=col,
        end_col_offset_idx=col + cols,
    )


def sample_document() -> DoclingDocument:
    """Two pages, laid out the way docling's PDF pipeline builds them.

    Page 1: running header, title, "1 Introduction" (level 1) with a paragraph,
    "1.1 Background" (level 2) with a list item and a captioned table (bottom-left
    origin; a column span and a row span). Page 2: "2 Results" (level 1), a picture
    with a caption child and a description, a paragraph.
    """
    doc = DoclingDocument(name="sample")
    doc.add_page(page_no=1, size=Size(width=WIDTH, height=HEIGHT))
    doc.add_page(page_no=2, size=Size(width=WIDTH, height=HEIGHT))
    doc.add_text(
        label=DocItemLabel.PAGE_HEADER,
        text="Working draft",
        prov=prov(1, 72, 20, 300, 32),
        content_layer=ContentLayer.FURNITURE,
    )
    doc.add_title("A Study of  Text Layers", prov=prov(1, 72, 60, 540, 90))
    doc.add_heading("1 Introduction", level=1, prov=prov(1, 72, 110, 300, 130))
    doc.add_text(label=DocItemLabel.TEXT, text="Intro\nparagraph.", prov=prov(1, 72, 140, 540, 170))
    doc.add_heading("1.1 Background", level=2, prov=prov(1, 72, 190, 300, 206))
    points = doc.add_list_group()
    doc.add_list_item("A listed point.", prov=prov(1, 90, 214, 540, 228), parent=points)
    caption = doc.add_text(
        label=DocItemLabel.CAPTION, text="Table 1: Results", prov=prov(1, 72, 240, 300, 254)
    )
    data = TableData(
        num_rows=3,
        num_cols=2,
        table_cells=[
            cell("Name", 0, 0, cols=2),
            cell("Group", 1, 0, rows=2),
            cell("x", 1, 1),
            cell("y", 2, 1),
        ],
    )
    # 260..360 from the top, written from the bottom: t = 792 - 260, b = 792 - 360
    doc.add_table(data=data, caption=caption, prov=prov(1, 72, 532, 540, 432, bottom_left=True))
    doc.add_heading("2 Results", level=1, prov=prov(2, 72, 60, 300, 80))
    picture = doc.add_picture(
        prov=prov(2, 72, 100, 272, 250),
        annotations=[DescriptionAnnotation(text="A red square.", provenance="test-model")],
    )
    figure_caption = doc.add_text(
        label=DocItemLabel.CAPTION,
        text="Figure 1: A red square",
        prov=prov(2, 72, 256, 300, 270),
        parent=picture,
    )
    picture.captions.append(figure_caption.get_ref())
    doc.add_text(
        label=DocItemLabel.TEXT, text="Closing paragraph.", prov=prov(2, 72, 300, 540, 330)
    )
    return doc


def to_result(doc: DoclingDocument, **options: Any) -> pb.DocTagsResult:
    return docling_to_result(doc, page_sizes=SIZES, options=ExtractOptions(**options))


def boxes(result: pb.DocTagsResult) -> Iterator[tuple[str, int, pb.BoundingBox]]:
    for paragraph in result.document.paragraphs:
        yield f"paragraph {paragraph.text!r}", paragraph.page_number, paragraph.bbox
    for table in result.tables:
        yield "table", table.page_number, table.bbox
    for figure in result.figures:
        yield "figure", figure.page_number, figure.bbox
    for block in result.text_blocks:
        yield f"{block.type} {block.text!r}", block.page_number, block.bbox


def as_tuple(box: pb.BoundingBox) -> tuple[float, float, float, float]:
    return (box.x, box.y, box.width, box.height)


# --- the mapping -----------------------------------------------------------------------


def test_title_sections_and_paragraphs() -> None:
    result = to_result(sample_document())
    assert result.document.title == "A Study of Text Layers"
    sections = [(s.title, s.level) for s in result.document.sections]
    assert sections == [("1 Introduction", 1), ("1.1 Background", 2), ("2 Results", 1)]
    assert [p.text for p in result.document.paragraphs] == [
        "Intro paragraph.",
        "A listed point.",
        "Closing paragraph.",
    ]
    intro, background, results = result.document.sections
    # a section holds what comes up to the next heading at its level or higher
    assert [p.text for p in intro.paragraphs] == ["Intro paragraph.", "A listed point."]
    assert [p.text for p in background.paragraphs] == ["A listed point."]
    assert [t.caption for t in intro.tables] == ["Table 1: Results"]
    assert [t.caption for t in background.tables] == ["Table 1: Results"]
    assert not intro.figures
    assert not background.figures
    assert [p.text for p in results.paragraphs] == ["Closing paragraph."]
    assert [f.caption for f in results.figures] == ["Figure 1: A red square"]
    assert not results.tables


def test_table_rows_keep_spans_and_emit_merged_cells_once() -> None:
    (table,) = to_result(sample_document()).tables
    rows = [[(c.text, c.row_span, c.col_span) for c in row.cells] for row in table.rows]
    assert rows == [[("Name", 1, 2)], [("Group", 2, 1), ("x", 1, 1)], [("y", 1, 1)]]
    assert table.caption == "Table 1: Results"
    assert table.page_number == 1


def test_picture_caption_and_description() -> None:
    (figure,) = to_result(sample_document()).figures
    assert figure.caption == "Figure 1: A red square"
    assert figure.description == "A red square."
    assert figure.page_number == 2
    assert as_tuple(figure.bbox) == pytest.approx((72, 100, 200, 150))


def test_picture_description_from_meta_and_absent() -> None:
    doc = DoclingDocument(name="pictures")
    doc.add_page(page_no=1, size=Size(width=WIDTH, height=HEIGHT))
    described = doc.add_picture(prov=prov(1, 10, 10, 100, 100))
    described.meta = PictureMeta(description=DescriptionMetaField(text="From meta."))
    doc.add_picture(prov=prov(1, 10, 200, 100, 300))
    first, second = to_result(doc).figures
    assert (first.description, first.caption) == ("From meta.", "")
    assert (second.description, second.caption) == ("", "")


def test_captions_are_not_paragraphs() -> None:
    result = to_result(sample_document())
    texts = [p.text for p in result.document.paragraphs]
    assert not any(text.startswith(("Table 1", "Figure 1")) for text in texts)


def test_text_blocks_in_reading_order_with_types() -> None:
    result = to_result(sample_document())
    blocks = [(b.type, b.text, b.page_number) for b in result.text_blocks]
    assert blocks == [
        ("page_header", "Working draft", 1),
        ("title", "A Study of Text Layers", 1),
        ("heading", "1 Introduction", 1),
        ("paragraph", "Intro paragraph.", 1),
        ("heading", "1.1 Background", 1),
        ("paragraph", "A listed point.", 1),
        ("caption", "Table 1: Results", 1),  # above its table
        ("table", "Name\nGroup | x\ny", 1),
        ("heading", "2 Results", 2),
        ("figure", "Figure 1: A red square", 2),
        ("caption", "Figure 1: A red square", 2),  # below its picture
        ("paragraph", "Closing paragraph.", 2),
    ]


def test_bottom_left_and_top_left_boxes_become_top_left_points() -> None:
    result = to_result(sample_document())
    (table,) = result.tables
    assert as_tuple(table.bbox) == pytest.approx((72, 260, 468, 100))
    intro = result.document.paragraphs[0]
    assert as_tuple(intro.bbox) == pytest.approx((72, 140, 468, 30))
    caption = next(b for b in result.text_blocks if b.text == "Table 1: Results")
    assert as_tuple(caption.bbox) == pytest.approx((72, 240, 228, 14))


def test_every_box_lies_inside_its_page() -> None:
    doc = sample_document()
    doc.add_text(label=DocItemLabel.TEXT, text="Overflowing.", prov=prov(2, -20, 700, 900, 850))
    doc.add_text(
        label=DocItemLabel.TEXT,
        text="Low corner.",
        prov=prov(2, 500, 30, 700, -10, bottom_left=True),
    )
    result = to_result(doc)
    seen = list(boxes(result))
    assert len(seen) > 10
    for what, page, box in seen:
        assert page in (1, 2), what
        assert box.width >= 0, what
        assert box.height >= 0, what
        assert 0 <= box.x <= box.x + box.width <= WIDTH + 1e-3, what
        assert 0 <= box.y <= box.y + box.height <= HEIGHT + 1e-3, what
    overflowing = next(p for p in result.document.paragraphs if p.text == "Overflowing.")
    assert as_tuple(overflowing.bbox) == pytest.approx((0, 700, WIDTH, HEIGHT - 700))
    low = next(p for p in result.document.paragraphs if p.text == "Low corner.")
    assert as_tuple(low.bbox) == pytest.approx((500, HEIGHT - 30, WIDTH - 500, 30))


def test_boxes_scale_to_the_given_page_sizes() -> None:
    doc = DoclingDocument(name="scaled")
    doc.add_page(page_no=1, size=Size(width=2 * WIDTH, height=2 * HEIGHT))
    doc.add_text(label=DocItemLabel.TEXT, text="Scaled.", prov=prov(1, 100, 200, 300, 400))
    (paragraph,) = docling_to_result(
        doc, page_sizes={1: (WIDTH, HEIGHT)}, options=ExtractOptions()
    ).document.paragraphs
    assert as_tuple(paragraph.bbox) == pytest.approx((50, 100, 100, 100))


@pytest.mark.parametrize(
    ("options", "empty"),
    [
        ({"tables": False}, "tables"),
        ({"figures": False}, "figures"),
        ({"text_blocks": False}, "text_blocks"),
    ],
)
def test_options_turn_lists_off(options: dict[str, bool], empty: str) -> None:
    result = to_result(sample_document(), **options)
    assert not getattr(result, empty)
    for kept in {"tables", "figures", "text_blocks"} - {empty}:
        assert getattr(result, kept), kept
    sections = result.document.sections
    if empty == "tables":
        assert not any(section.tables for section in sections)
    if empty == "figures":
        assert not any(section.figures for section in sections)
    assert len(result.document.paragraphs) == 3


def test_page_filtering_keeps_only_selected_pages() -> None:
    result = docling_to_result(
        sample_document(),
        page_sizes=SIZES,
        options=ExtractOptions(first_page=2, last_page=2),
        fallback_title="From metadata",
    )
    assert result.document.title == "From metadata"
    assert [s.title for s in result.document.sections] == ["2 Results"]
    assert [p.text for p in result.document.paragraphs] == ["Closing paragraph."]
    assert not result.tables
    assert [f.caption for f in result.figures] == ["Figure 1: A red square"]
    assert {b.page_number for b in result.text_blocks} == {2}

    first = to_result(sample_document(), last_page=1)
    assert {b.page_number for b in first.text_blocks} == {1}
    assert not first.figures
    assert len(first.tables) == 1


def test_table_children_and_items_without_provenance() -> None:
    doc = DoclingDocument(name="odd")
    doc.add_page(page_no=1, size=Size(width=WIDTH, height=HEIGHT))
    doc.add_text(label=DocItemLabel.TEXT, text="Placed.", prov=prov(1, 10, 10, 100, 20))
    doc.add_text(label=DocItemLabel.TEXT, text="Unplaced.")
    table = doc.add_table(data=TableData(num_rows=1, num_cols=1, table_cells=[cell("c", 0, 0)]))
    caption = doc.add_text(label=DocItemLabel.CAPTION, text="Child caption", parent=table)
    table.captions.append(caption.get_ref())
    doc.add_text(label=DocItemLabel.FOOTNOTE, text="Table footnote.", parent=table)
    doc.add_text(label=DocItemLabel.CAPTION, text="Loose caption", prov=prov(1, 10, 500, 100, 510))
    result = to_result(doc)
    texts = [p.text for p in result.document.paragraphs]
    assert texts == ["Placed.", "Unplaced.", "Table footnote."]
    unplaced = result.document.paragraphs[1]
    assert unplaced.page_number == 1
    assert as_tuple(unplaced.bbox) == pytest.approx((0, 0, WIDTH, HEIGHT))
    assert [t.caption for t in result.tables] == ["Child caption"]
    blocks = [(b.type, b.text) for b in result.text_blocks]
    assert ("caption", "Loose caption") in blocks
    assert blocks.count(("caption", "Child caption")) == 1


# --- the engine, with stand-in docling modules -------------------------------------------


class ConversionError(RuntimeError):
    pass


@dataclass
class DocumentStream:
    name: str
    stream: io.BytesIO


@dataclass
class Converted:
    document: DoclingDocument


@dataclass
class StandInConverter:
    """Records each ``convert`` call; answers with ``document`` or raises ``error``."""

    document: DoclingDocument | None = None
    error: BaseException | None = None
    calls: list[tuple[DocumentStream, dict[str, Any]]] = field(default_factory=list)

    def convert(self, source: DocumentStream, **kwargs: Any) -> Converted:
        self.calls.append((source, kwargs))
        if self.error is not None:
            raise self.error
        assert self.document is not None
        return Converted(self.document)


@dataclass
class BuiltConverter:
    allowed_formats: list[str]
    initialized: list[str] = field(default_factory=list)
    fail: ClassVar[bool] = False

    def initialize_pipeline(self, fmt: str) -> None:
        if self.fail:
            raise OSError("model weights missing")
        self.initialized.append(fmt)


@pytest.fixture
def docling_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in ``docling`` modules with the names the engine uses."""
    modules = {
        "docling": {},
        "docling.document_converter": {"DocumentConverter": BuiltConverter},
        "docling.datamodel": {},
        "docling.datamodel.base_models": {
            "DocumentStream": DocumentStream,
            "InputFormat": types.SimpleNamespace(PDF="pdf"),
        },
        "docling.exceptions": {"ConversionError": ConversionError},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        for key, value in attributes.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture
def make_engine(docling_modules: None) -> Callable[..., tuple[DoclingEngine, StandInConverter]]:
    def build(**kwargs: Any) -> tuple[DoclingEngine, StandInConverter]:
        converter = StandInConverter(**kwargs)
        engine = DoclingEngine(
            max_bytes=10_000_000, max_pages=50, clock=FakeClock(), converter=converter
        )
        return engine, converter

    return build


def test_engine_converts_the_selected_pages(
    make_engine: Callable[..., tuple[DoclingEngine, StandInConverter]],
    blank_pdf: Callable[[int], bytes],
) -> None:
    engine, converter = make_engine(document=sample_document())
    pdf = blank_pdf(3)
    result = engine.process(pdf, filename="report", options=ExtractOptions(first_page=2))
    ((source, kwargs),) = converter.calls
    assert source.name == "report.pdf"
    assert source.stream.getvalue() == pdf
    assert kwargs["page_range"] == (2, 3)
    assert kwargs["raises_on_error"] is True
    assert (kwargs["max_num_pages"], kwargs["max_file_size"]) == (50, 10_000_000)
    assert [s.title for s in result.document.sections] == ["2 Results"]
    assert result.metadata.filename == "report"
    assert result.metadata.page_count == 3
    assert result.metadata.processing_model == "docling"
    assert len(result.metadata.checksum) == 64
    assert engine.name == "docling"
    assert isinstance(engine, DocumentEngine)


def test_engine_boxes_use_the_pdf_page_size(
    make_engine: Callable[..., tuple[DoclingEngine, StandInConverter]],
    blank_pdf: Callable[[int], bytes],
) -> None:
    engine, _ = make_engine(document=sample_document())
    result = engine.process(blank_pdf(2), filename="a.pdf", options=ExtractOptions())
    # the test PDFs are A4 (595.28 x 841.89 pt); the document's pages are 612 x 792
    (table,) = result.tables
    assert table.bbox.x == pytest.approx(72 * 595.28 / WIDTH, rel=1e-3)
    assert table.bbox.y == pytest.approx(260 * 841.89 / HEIGHT, rel=1e-3)
    for what, _, box in boxes(result):
        assert box.x + box.width <= 595.28 + 1e-2, what
        assert box.y + box.height <= 841.89 + 1e-2, what


def test_engine_rejects_bad_input_before_docling(
    make_engine: Callable[..., tuple[DoclingEngine, StandInConverter]],
    blank_pdf: Callable[[int], bytes],
) -> None:
    engine, converter = make_engine(document=sample_document())
    with pytest.raises(ValidationError, match="pdf_content"):
        engine.process(b"not a pdf", filename="x.pdf", options=ExtractOptions())
    with pytest.raises(ValidationError, match="first_page"):
        engine.process(blank_pdf(1), filename="x.pdf", options=ExtractOptions(first_page=3))
    assert not converter.calls


def test_engine_maps_conversion_errors(
    make_engine: Callable[..., tuple[DoclingEngine, StandInConverter]],
    blank_pdf: Callable[[int], bytes],
) -> None:
    engine, _ = make_engine(error=ConversionError("Input document x.pdf is not valid."))
    with pytest.raises(ValidationError, match=r"pdf_content: cannot be converted") as info:
        engine.process(blank_pdf(1), filename="x.pdf", options=ExtractOptions())
    assert info.value.validation_errors[0]["field"] == "pdf_content"

    engine, _ = make_engine(error=RuntimeError("Pipeline StandardPdfPipeline failed"))
    with pytest.raises(RuntimeError, match="Pipeline"):
        engine.process(blank_pdf(1), filename="x.pdf", options=ExtractOptions())


def test_engine_builds_a_pdf_only_converter(docling_modules: None) -> None:
    engine = DoclingEngine(max_bytes=1_000, max_pages=5)
    converter = engine._converter
    assert isinstance(converter, BuiltConverter)
    assert converter.allowed_formats == ["pdf"]
    assert converter.initialized == ["pdf"]


def test_engine_reports_a_pipeline_that_cannot_load(
    docling_modules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BuiltConverter, "fail", True)
    with pytest.raises(FailedPrecondition, match="could not load its PDF pipeline"):
        DoclingEngine(max_bytes=1_000, max_pages=5)
