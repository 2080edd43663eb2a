"""The page data the text-layer engine works on: boxes, lines, tables, images, pages.

Coordinates are PDF points from the page's top-left corner. ``order`` numbers a
piece's place in its page's reading order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["Box", "Cell", "Image", "Line", "PageData", "TableData", "header_rows"]


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
    """A table; a merged cell appears once, in its first row and column. The first
    ``header_rows`` rows are column headers."""

    rows: tuple[tuple[Cell, ...], ...]
    box: Box
    page_number: int
    order: int = 0
    header_rows: int = 0


_NUMBER: Final = re.compile(r"^[-+−]?[$€£]?\d[\d.,\s]*%?$")


def header_rows(rows: Sequence[Sequence[str]], *, bold: Sequence[bool]) -> int:
    """1 when the first row reads as column headers, else 0.

    It does when it is bold and the next row is not, or when none of its cells is a
    number while some column holds only numbers below it. ``bold[i]``: row i is bold.
    """
    if len(rows) < 2:
        return 0
    if bold[0] and not bold[1]:
        return 1
    if any(_NUMBER.match(cell) for cell in rows[0]):
        return 0
    width = min(len(row) for row in rows)
    numeric = any(all(_NUMBER.match(row[column]) for row in rows[1:]) for column in range(width))
    return 1 if numeric else 0


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
