"""One pdfplumber page as plain data: text lines, tables and images in page coordinates,
each numbered in reading order (``order``).

Coordinates are PDF points from the page's top-left corner, clamped to the page box.
A line here is a segment: the words of one text row between two gaps wider than a
gutter can be narrow, so the rows of side-by-side columns stay apart.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from pdfplumber.page import Page
from pdfplumber.table import Table

from servicegrid.documents._page_data import (
    Box,
    Cell,
    Image,
    Line,
    PageData,
    TableData,
    header_rows,
)
from servicegrid.documents._reading_order import reading_order
from servicegrid.documents._unruled_tables import find_unruled_tables

__all__ = [
    "Box",
    "Cell",
    "Image",
    "Line",
    "PageData",
    "TableData",
    "has_text_layer",
    "read_page",
]

_BOLD: Final = re.compile(r"bold|black|heavy|semibold|demi", re.IGNORECASE)
_SPACES: Final = re.compile(r"\s+")
_GRID_NOISE: Final = 0.5
# A gap between words wider than this many times the body font size separates columns.
_GUTTER_EMS: Final = 1.2
_MIN_GUTTER: Final = 6.0
# A word belongs to a row when this share of the shorter of the two heights overlaps.
_SAME_ROW: Final = 0.5
# A page with fewer letters and digits than this in its text layer is read by OCR.
_MIN_TEXT_LAYER_CHARS: Final = 10

RawBox = tuple[float, float, float, float]


class _Frame:
    """Maps pdfplumber coordinates of one page to clamped, top-left-relative boxes."""

    def __init__(self, page: Page) -> None:
        self.left, self.top = float(page.bbox[0]), float(page.bbox[1])
        self.width, self.height = float(page.width), float(page.height)

    def box(self, x0: float, top: float, x1: float, bottom: float) -> Box:
        def clamp(value: float, limit: float) -> float:
            return min(max(value, 0.0), limit)

        return Box(
            clamp(float(x0) - self.left, self.width),
            clamp(float(top) - self.top, self.height),
            clamp(float(x1) - self.left, self.width),
            clamp(float(bottom) - self.top, self.height),
        )


def has_text_layer(page: Page) -> bool:
    """Whether the page holds enough letters or digits to read it without OCR."""
    count = 0
    for char in page.chars:
        if str(char["text"]).isalnum():
            count += 1
            if count >= _MIN_TEXT_LAYER_CHARS:
                return True
    return False


def read_page(page: Page, *, ocr_words: list[dict[str, Any]] | None = None) -> PageData:
    """Read lines, tables and images, in reading order; text inside a table is left out of
    the lines. ``ocr_words`` (in points) stand in for a page without a text layer: the
    scan's image is then not a figure, and only unruled tables are looked for."""
    frame = _Frame(page)
    if ocr_words is None:
        found = [table for table in page.find_tables() if len(table.cells) > 1]
        words = _words(page, [_raw(table.bbox) for table in found])
    else:
        found, words = [], ocr_words
    gap = max(_MIN_GUTTER, _GUTTER_EMS * _body_size(words))
    unruled, lines = find_unruled_tables(_rows(words, frame, page.page_number, gap))
    tables = [_table(table, frame, page) for table in found] + unruled
    images = _images(page, frame) if ocr_words is None else []
    pieces: list[Line | TableData | Image] = [*lines, *tables, *images]
    ordered = [
        replace(pieces[i], order=rank)
        for rank, i in enumerate(
            reading_order([piece.box for piece in pieces], gap=gap, rtl=_right_to_left(words))
        )
    ]
    return PageData(
        number=page.page_number,
        width=frame.width,
        height=frame.height,
        lines=tuple(piece for piece in ordered if isinstance(piece, Line)),
        tables=tuple(piece for piece in ordered if isinstance(piece, TableData)),
        images=tuple(piece for piece in ordered if isinstance(piece, Image)),
    )


def _raw(bbox: Sequence[float]) -> RawBox:
    return (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))


def _inside(obj: dict[str, Any], boxes: Sequence[RawBox]) -> bool:
    x = (obj["x0"] + obj["x1"]) / 2
    y = (obj["top"] + obj["bottom"]) / 2
    return any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)


def _words(page: Page, table_boxes: Sequence[RawBox]) -> list[dict[str, Any]]:
    if table_boxes:
        page = page.filter(
            lambda obj: obj.get("object_type") != "char" or not _inside(obj, table_boxes)
        )
    # Scaled word gap: some PDFs hold no space glyphs, only wider gaps between words.
    words: list[dict[str, Any]] = page.extract_words(
        x_tolerance_ratio=0.2, extra_attrs=["size", "fontname"]
    )
    return [word for word in words if word["text"].strip()]


def _right_to_left(words: Sequence[dict[str, Any]]) -> bool:
    """Whether most letters on the page are of a right-to-left script (its columns too)."""
    letters = rtl = 0
    for word in words:
        for char in word["text"]:
            kind = unicodedata.bidirectional(char)
            if kind in ("L", "R", "AL"):
                letters += 1
                rtl += kind != "L"
    return rtl * 2 > letters


def _body_size(words: Sequence[dict[str, Any]]) -> float:
    if not words:
        return 0.0
    return float(statistics.median(float(word["size"]) for word in words))


def _rows(
    words: Sequence[dict[str, Any]], frame: _Frame, page_number: int, gap: float
) -> list[list[Line]]:
    """Words in rows, top down (a word joins the row it overlaps by half the shorter
    height), each row cut into segments, left to right, wherever two words are more than
    ``gap`` apart."""
    rows: list[list[dict[str, Any]]] = []
    spans: list[tuple[float, float]] = []
    for word in sorted(words, key=lambda w: (float(w["top"]), float(w["x0"]))):
        top, bottom = float(word["top"]), float(word["bottom"])
        # Joins the row it mostly overlaps: a raised footnote mark joins its line.
        if spans and _overlap(spans[-1], (top, bottom)) >= _SAME_ROW * min(
            bottom - top, spans[-1][1] - spans[-1][0]
        ):
            rows[-1].append(word)
            spans[-1] = (min(spans[-1][0], top), max(spans[-1][1], bottom))
        else:
            rows.append([word])
            spans.append((top, bottom))
    segmented: list[list[Line]] = []
    for row in rows:
        lines: list[Line] = []
        segment: list[dict[str, Any]] = []
        for word in sorted(row, key=lambda w: float(w["x0"])):
            if segment and float(word["x0"]) - float(segment[-1]["x1"]) > gap:
                lines.append(_line(segment, frame, page_number))
                segment = []
            segment.append(word)
        lines.append(_line(segment, frame, page_number))
        segmented.append(lines)
    return segmented


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def _line(words: Sequence[dict[str, Any]], frame: _Frame, page_number: int) -> Line:
    sizes: Counter[float] = Counter()
    for word in words:
        sizes[round(float(word["size"]), 1)] += len(word["text"])
    return Line(
        text=_SPACES.sub(" ", " ".join(word["text"] for word in words)).strip(),
        box=frame.box(
            min(float(w["x0"]) for w in words),
            min(float(w["top"]) for w in words),
            max(float(w["x1"]) for w in words),
            max(float(w["bottom"]) for w in words),
        ),
        size=sizes.most_common(1)[0][0],
        bold=all(_BOLD.search(str(word["fontname"])) for word in words),
        page_number=page_number,
    )


def _table(table: Table, frame: _Frame, page: Page) -> TableData:
    column_starts = sorted({float(cell[0]) for cell in table.cells})
    row_starts = sorted({float(cell[1]) for cell in table.cells})
    rows: list[tuple[Cell, ...]] = []
    for row, texts in zip(table.rows, table.extract(), strict=True):
        cells: list[Cell] = []
        for bbox, text in zip(row.cells, texts, strict=True):
            if bbox is None:  # covered by a merged cell already emitted
                continue
            x0, top, x1, bottom = _raw(bbox)
            cells.append(
                Cell(
                    text=_SPACES.sub(" ", text or "").strip(),
                    row_span=_covered(row_starts, top, bottom),
                    col_span=_covered(column_starts, x0, x1),
                )
            )
        rows.append(tuple(cells))
    bold = [_bold_row(page, _raw(row.bbox)) for row in table.rows[:2]]
    return TableData(
        rows=tuple(rows),
        box=frame.box(*_raw(table.bbox)),
        page_number=page.page_number,
        header_rows=header_rows([[cell.text for cell in row] for row in rows], bold=bold),
    )


def _bold_row(page: Page, bbox: RawBox) -> bool:
    """Whether every glyph inside ``bbox`` is set in a bold font (False when it has none)."""
    glyphs = [c for c in page.chars if str(c["text"]).strip() and _inside(c, [bbox])]
    return bool(glyphs) and all(_BOLD.search(str(c["fontname"])) for c in glyphs)


def _covered(starts: Sequence[float], low: float, high: float) -> int:
    """How many grid rows or columns start inside ``[low, high)``, allowing rounding noise."""
    return sum(1 for start in starts if low - _GRID_NOISE <= start < high - _GRID_NOISE)


def _images(page: Page, frame: _Frame) -> list[Image]:
    images: list[Image] = []
    for image in page.images:
        box = frame.box(image["x0"], image["top"], image["x1"], image["bottom"])
        if box.width >= 1 and box.height >= 1:
            images.append(Image(box=box, page_number=page.page_number))
    return images
