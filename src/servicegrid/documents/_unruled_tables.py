"""Tables without ruling lines, found from how their text is aligned.

The page comes as rows of segments (a text row cut at every gap wider than a gutter
can be narrow), so a table row shows up as a row of two or more segments.
A table is a run of at least three such rows, one under the other at a steady
pitch, whose segments fall into the same columns, and whose rows look like a
table's: short cells (three words at most) or sparse text (the segments cover
well under the row's width). That last test tells a table from columns of
prose, whose rows are also cut in two or three but whose segments are long
and fill their columns. A bold first row, or one of words above a column of numbers, is
the header.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Final

from servicegrid.documents._page_data import Box, Cell, Line, TableData, header_rows

__all__ = ["find_unruled_tables"]

_MIN_ROWS: Final = 3
# Rows of prose columns cover nearly all of their width; table rows far less.
_MAX_FILL: Final = 0.6
_MAX_CELL_WORDS: Final = 3
# A run whose every column starts where this many other lines start is prose in columns.
_PROSE_LINES: Final = 3
_SAME_START: Final = 2.0
# A row further below the previous than this many line heights ends the run.
_MAX_PITCH_LINES: Final = 2.5
# Of the run's rows, this share must put their segments in distinct columns.
_MIN_ALIGNED_SHARE: Final = 0.8


def find_unruled_tables(
    rows: Sequence[Sequence[Line]],
) -> tuple[list[TableData], list[Line]]:
    """The unruled tables among one page's ``rows`` (top down, each left to right), and
    the lines that are not in one."""
    lines = [line for row in rows for line in row]
    tables: list[TableData] = []
    used: set[int] = set()
    for run in _runs(rows):
        if _prose_columns(run, lines):
            continue
        table = _table(run, run[0][0].page_number)
        if table is not None:
            tables.append(table)
            used.update(id(line) for row in run for line in row)
    return tables, [line for line in lines if id(line) not in used]


def _runs(rows: Sequence[Sequence[Line]]) -> list[list[Sequence[Line]]]:
    """Maximal runs of consecutive sparse rows of two or more segments at a steady pitch."""
    runs: list[list[Sequence[Line]]] = []
    current: list[Sequence[Line]] = []
    for row in rows:
        if _tabular(row) and _follows(current, row):
            current.append(row)
            continue
        if len(current) >= _MIN_ROWS:
            runs.append(current)
        current = [row] if _tabular(row) else []
    if len(current) >= _MIN_ROWS:
        runs.append(current)
    return runs


def _tabular(row: Sequence[Line]) -> bool:
    """Two segments or more, either all short or covering little of the row."""
    if len(row) < 2:
        return False
    short = all(len(line.text.split()) <= _MAX_CELL_WORDS for line in row)
    return short or _fill(row) <= _MAX_FILL


def _fill(row: Sequence[Line]) -> float:
    span = row[-1].box.x1 - row[0].box.x0
    return sum(line.box.width for line in row) / span if span > 0 else 1.0


def _follows(run: Sequence[Sequence[Line]], row: Sequence[Line]) -> bool:
    if not run:
        return True
    previous = run[-1]
    height = statistics.median(line.box.height for line in previous)
    return row[0].box.top - previous[0].box.top <= _MAX_PITCH_LINES * max(height, 1.0)


def _prose_columns(run: Sequence[Sequence[Line]], lines: Sequence[Line]) -> bool:
    """Whether every column of ``run`` starts where other lines of the page start too: the
    page's own columns of prose, some of whose lines happen to be short."""
    inside = {id(line) for row in run for line in row}
    outside = [line.box.x0 for line in lines if id(line) not in inside]
    starts = {round(line.box.x0) for row in run for line in row}
    columns = _columns(run)
    column_starts = [min(x for x in starts if x0 - 1 <= x <= x1) for x0, x1 in columns]
    return all(
        sum(1 for x in outside if abs(x - start) <= _SAME_START) >= _PROSE_LINES
        for start in column_starts
    )


def _table(run: Sequence[Sequence[Line]], page_number: int) -> TableData | None:
    columns = _columns(run)
    if len(columns) < 2:
        return None
    aligned = 0
    grid: list[tuple[Cell, ...]] = []
    for row in run:
        spots = [_spot(line.box, columns) for line in row]
        if len({first for first, _ in spots}) == len(spots):
            aligned += 1
        grid.append(_cells(row, spots, len(columns)))
    if aligned < _MIN_ALIGNED_SHARE * len(run):
        return None
    box = run[0][0].box
    for row in run:
        for line in row:
            box = box.union(line.box)
    heads = header_rows(
        [[cell.text for cell in row] for row in grid],
        bold=[all(line.bold for line in row) for row in run],
    )
    return TableData(rows=tuple(grid), box=box, page_number=page_number, header_rows=heads)


def _columns(run: Sequence[Sequence[Line]]) -> list[tuple[float, float]]:
    """Column extents: the merged x-ranges of the rows that have the most segments."""
    most = max(len(row) for row in run)
    spans = sorted((line.box.x0, line.box.x1) for row in run if len(row) == most for line in row)
    merged: list[tuple[float, float]] = []
    for x0, x1 in spans:
        if merged and x0 <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], x1))
        else:
            merged.append((x0, x1))
    return merged


def _spot(box: Box, columns: Sequence[tuple[float, float]]) -> tuple[int, int]:
    """The first column ``box`` overlaps (or is nearest to) and how many it spans."""
    hit = [i for i, (x0, x1) in enumerate(columns) if box.x0 < x1 and box.x1 > x0]
    if not hit:
        centre = (box.x0 + box.x1) / 2
        nearest = min(range(len(columns)), key=lambda i: abs(sum(columns[i]) / 2 - centre))
        return nearest, 1
    return hit[0], hit[-1] - hit[0] + 1


def _cells(row: Sequence[Line], spots: Sequence[tuple[int, int]], width: int) -> tuple[Cell, ...]:
    """One cell per column (empty where the row has no text there), spans kept."""
    texts: dict[int, tuple[str, int]] = {}
    for line, (first, span) in zip(row, spots, strict=True):
        text, known = texts.get(first, ("", span))
        texts[first] = (f"{text} {line.text}".strip(), max(known, span))
    cells: list[Cell] = []
    column = 0
    while column < width:
        text, span = texts.get(column, ("", 1))
        cells.append(Cell(text=text, row_span=1, col_span=span))
        column += span
    return tuple(cells)
