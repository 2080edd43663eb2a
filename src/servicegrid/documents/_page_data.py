"""The page data the text-layer engine works on: boxes, lines, tables, images, pages.

Coordinates are PDF points from the page's top-left corner. ``order`` numbers a
piece's place in its page's reading order.
"""

from __future__ import annotations

from dataclasses import dataclass

from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["Box", "Cell", "Image", "Line", "PageData", "TableData"]


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
    order: int = 0


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
    order: int = 0


@dataclass(frozen=True, slots=True)
class Image:
    box: Box
    page_number: int
    order: int = 0


@dataclass(frozen=True, slots=True)
class PageData:
    number: int
    width: float
    height: float
    lines: tuple[Line, ...]
    tables: tuple[TableData, ...]
    images: tuple[Image, ...]
