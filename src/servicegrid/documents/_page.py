"""One pdfplumber page as plain data: text lines, tables and images in page coordinates.

Coordinates are PDF points from the page's top-left corner, clamped to the page box.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from pdfplumber.page import Page
from pdfplumber.table import Table

from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["Box", "Cell", "Image", "Line", "PageData", "TableData", "read_page"]

_BOLD: Final = re.compile(r"bold|black|heavy|semibold|demi", re.IGNORECASE)
_SPACES: Final = re.compile(r"\s+")
_GRID_NOISE: Final = 0.5

RawBox = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle in points: left, top, right, bottom."""

    x0: float
    top: float
    x1: float
    bottom: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x0, other.x0),
            min(self.top, other.top),
            max(self.x1, other.x1),
            max(self.bottom, other.bottom),
        )

    def overlaps_x(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1

    def to_proto(self) -> pb.BoundingBox:
        return pb.BoundingBox(x=self.x0, y=self.top, width=self.width, height=self.height)


@dataclass(frozen=True, slots=True)
class Line:
    """One text line: its dominant font size, and whether every glyph is bold."""

    text: str
    box: Box
    size: float
    bold: bool
    page_number: int


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    row_span: int
    col_span: int


@dataclass(frozen=True, slots=True)
class TableData:
    """A ruled table; a merged cell appears once, in its first row and column."""

    rows: tuple[tuple[Cell, ...], ...]
    box: Box
    page_number: int


@dataclass(frozen=True, slots=True)
class Image:
    box: Box
    page_number: int


@dataclass(frozen=True, slots=True)
class PageData:
    number: int
    width: float
    height: float
    lines: tuple[Line, ...]
    tables: tuple[TableData, ...]
    images: tuple[Image, ...]


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


def read_page(page: Page) -> PageData:
    """Read lines, tables and images; text inside a table is left out of the lines."""
    frame = _Frame(page)
    found = [table for table in page.find_tables() if len(table.cells) > 1]
    raw_boxes = [_raw(table.bbox) for table in found]
    return PageData(
        number=page.page_number,
        width=frame.width,
        height=frame.height,
        lines=tuple(_lines(page, frame, raw_boxes)),
        tables=tuple(_table(table, frame, page.page_number) for table in found),
        images=tuple(_images(page, frame)),
    )


def _raw(bbox: Sequence[float]) -> RawBox:
    return (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))


def _inside(obj: dict[str, Any], boxes: Sequence[RawBox]) -> bool:
    x = (obj["x0"] + obj["x1"]) / 2
    y = (obj["top"] + obj["bottom"]) / 2
    return any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)


def _lines(page: Page, frame: _Frame, table_boxes: Sequence[RawBox]) -> list[Line]:
    if table_boxes:
        page = page.filter(
            lambda obj: obj.get("object_type") != "char" or not _inside(obj, table_boxes)
        )
    lines: list[Line] = []
    # Scaled word gap: some PDFs hold no space glyphs, only wider gaps between words.
    raw_lines = page.extract_text_lines(return_chars=True, strip=True, x_tolerance_ratio=0.2)
    for raw in raw_lines:
        text = _SPACES.sub(" ", raw["text"]).strip()
        glyphs = [char for char in raw["chars"] if char["text"].strip()]
        if not text or not glyphs:
            continue
        sizes = Counter(round(float(char["size"]), 1) for char in glyphs)
        lines.append(
            Line(
                text=text,
                box=frame.box(raw["x0"], raw["top"], raw["x1"], raw["bottom"]),
                size=sizes.most_common(1)[0][0],
                bold=all(_BOLD.search(str(char["fontname"])) for char in glyphs),
                page_number=page.page_number,
            )
        )
    return lines


def _table(table: Table, frame: _Frame, page_number: int) -> TableData:
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
    return TableData(rows=tuple(rows), box=frame.box(*_raw(table.bbox)), page_number=page_number)


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
