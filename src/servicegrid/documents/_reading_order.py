"""Reading order of the pieces of a page: columns found from their gutters, no model.

A piece is anything with a box: a line segment (the words of one text line
between two wide gaps), a table, an image. The order is found recursively, as
an XY-cut whose cuts come from gutters rather than from every gap:

- a **gutter** is a vertical strip, at least ``gap`` wide, that almost no piece
  of the region crosses, with enough text on both sides to be columns;
- a piece that does cross a gutter (a title, a full-width paragraph, a wide
  table) is **full width**: it cuts the region into bands above and below it,
  and each band is ordered on its own;
- a region without full-width pieces is cut at its gutters into columns, read
  left to right (right to left for right-to-left scripts), each ordered on its own;
- a region without gutters is cut at its widest horizontal gap, if it has one, and
  each half ordered on its own (a page may go from two columns to three);
- a region without either is one column: top to bottom, a row left to right.

Cutting only at gutters and full-width pieces keeps a paragraph break that happens
to line up in both columns from slicing the columns into strips, the classic
failure of a plain XY-cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from servicegrid.documents._page_data import Box

__all__ = ["reading_order"]

# Pieces crossing a gutter may be this share of the region's pieces and it is still one.
_CROSSING_SHARE: Final = 0.1
_MAX_CROSSING: Final = 2
# A column is at least this many gaps wide: list markers and indents are not columns.
_MIN_COLUMN_GAPS: Final = 5.0
_MIN_PIECES_PER_COLUMN: Final = 2
_WIDE_SHARE: Final = 0.6


def reading_order(boxes: Sequence[Box], *, gap: float, rtl: bool = False) -> list[int]:
    """The indices of ``boxes`` in reading order; ``gap`` is the narrowest gutter (points)."""
    return _order(list(range(len(boxes))), boxes, gap, rtl)


def _order(ids: list[int], boxes: Sequence[Box], gap: float, rtl: bool) -> list[int]:
    if len(ids) < 2 * _MIN_PIECES_PER_COLUMN:
        return _top_down(ids, boxes)
    gutters = _gutters(ids, boxes, gap)
    if not gutters:
        halves = _split_at_widest_gap(ids, boxes, gap)
        if halves is None:
            return _top_down(ids, boxes)
        return [i for half in halves for i in _order(half, boxes, gap, rtl)]
    crossing = [i for i in ids if any(_crosses(boxes[i], gutter) for gutter in gutters)]
    if crossing:
        return _by_bands(ids, crossing, boxes, gap, rtl)
    columns: list[list[int]] = [[] for _ in range(len(gutters) + 1)]
    for i in ids:
        centre = (boxes[i].x0 + boxes[i].x1) / 2
        columns[sum(1 for start, _ in gutters if centre > start)].append(i)
    if rtl:
        columns.reverse()
    return [i for column in columns for i in _order(column, boxes, gap, rtl)]


def _split_at_widest_gap(
    ids: list[int], boxes: Sequence[Box], gap: float
) -> tuple[list[int], list[int]] | None:
    """The pieces above and below the widest horizontal gap across the whole region, if
    one is at least half a ``gap`` high: where columns change (two above, three below),
    no gutter runs the region's height, but the halves may each have their own."""
    by_top = sorted(ids, key=lambda i: boxes[i].top)
    widest, cut, reach = gap / 2, -1, boxes[by_top[0]].bottom
    for position, i in enumerate(by_top[1:], start=1):
        if boxes[i].top - reach >= widest:
            widest, cut = boxes[i].top - reach, position
        reach = max(reach, boxes[i].bottom)
    if cut < 0:
        return None
    return by_top[:cut], by_top[cut:]


def _by_bands(
    ids: list[int], crossing: list[int], boxes: Sequence[Box], gap: float, rtl: bool
) -> list[int]:
    """Full-width pieces in top order, each band between them ordered on its own."""
    separators = sorted(crossing, key=lambda i: (boxes[i].top, boxes[i].x0))
    bands: list[list[int]] = [[] for _ in range(len(separators) + 1)]
    for i in ids:
        if i in crossing:
            continue
        centre = (boxes[i].top + boxes[i].bottom) / 2
        # The band after the last separator that starts above this piece's middle.
        bands[sum(1 for s in separators if boxes[s].top < centre)].append(i)
    ordered: list[int] = []
    for band, separator in zip(bands, [*separators, None], strict=True):
        ordered.extend(_order(band, boxes, gap, rtl))
        if separator is not None:
            ordered.append(separator)
    return ordered


def _gutters(ids: list[int], boxes: Sequence[Box], gap: float) -> list[tuple[float, float]]:
    """Vertical strips at least ``gap`` wide that few pieces cross and that have columns,
    at least ``_MIN_COLUMN_GAPS`` gaps wide with pieces side by side, on both sides.

    Pieces wider than ``_WIDE_SHARE`` of the region (titles, wide tables: the likely
    full-width pieces) are left out of the search, so that a few of them cannot hide
    the gutter they cross.
    """
    left = min(boxes[i].x0 for i in ids)
    right = max(boxes[i].x1 for i in ids)
    narrow = [i for i in ids if boxes[i].width <= _WIDE_SHARE * (right - left)]
    if len(narrow) < 2 * _MIN_PIECES_PER_COLUMN:
        return []
    # Never so many that a short column beside a long one passes for pieces crossing.
    allowed = min(int(len(narrow) * _CROSSING_SHARE), _MAX_CROSSING)
    events = sorted(
        [(boxes[i].x0, 1) for i in narrow] + [(boxes[i].x1, -1) for i in narrow],
        key=lambda event: (event[0], event[1]),
    )
    strips: list[tuple[float, float]] = []
    depth, opened_at = 0, left
    for x, step in events:
        before = depth
        depth += step
        if before > allowed >= depth:
            opened_at = x
        elif depth > allowed >= before and x - opened_at >= gap:
            strips.append((opened_at, x))
    return [
        strip
        for strip in strips
        if strip[0] - left >= _MIN_COLUMN_GAPS * gap
        and right - strip[1] >= _MIN_COLUMN_GAPS * gap
        and _side_by_side(narrow, boxes, strip)
    ]


def _side_by_side(ids: list[int], boxes: Sequence[Box], strip: tuple[float, float]) -> bool:
    """Enough pieces wholly on each side, and the two sides share some height."""
    lefts = [boxes[i] for i in ids if boxes[i].x1 <= strip[0]]
    rights = [boxes[i] for i in ids if boxes[i].x0 >= strip[1]]
    if len(lefts) < _MIN_PIECES_PER_COLUMN or len(rights) < _MIN_PIECES_PER_COLUMN:
        return False
    top = max(min(b.top for b in lefts), min(b.top for b in rights))
    bottom = min(max(b.bottom for b in lefts), max(b.bottom for b in rights))
    return bottom > top


def _crosses(box: Box, gutter: tuple[float, float]) -> bool:
    """Reaches into the columns on both sides (a line that only juts into it does not)."""
    return box.x0 <= gutter[0] and box.x1 >= gutter[1]


def _top_down(ids: list[int], boxes: Sequence[Box]) -> list[int]:
    """Top to bottom; pieces of one row (their middles within each other's height) by x."""
    by_top = sorted(ids, key=lambda i: (boxes[i].top, boxes[i].x0))
    rows: list[list[int]] = []
    for i in by_top:
        box = boxes[i]
        centre = (box.top + box.bottom) / 2
        if rows:
            last = boxes[rows[-1][0]]
            if last.top <= centre <= last.bottom:
                rows[-1].append(i)
                continue
        rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda i: boxes[i].x0)]
