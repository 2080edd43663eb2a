"""Adapters that turn a PDF into a common :class:`Extraction`, one per engine compared.

A field an engine does not produce is None (reported as n/a), never an empty list: an
empty list means the engine looked and found nothing.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

__all__ = ["PEERS", "Extraction", "PageExtraction", "Peer", "available_peers"]

Table = list[list[str]]


@dataclass(slots=True)
class PageExtraction:
    """One page as an engine gives it: body texts in its order, and what else it tells apart."""

    body: list[str] = field(default_factory=list)
    tables: list[Table] | None = None
    headers: list[str] | None = None
    footers: list[str] | None = None
    footnotes: list[str] | None = None

    def all_text(self) -> list[str]:
        """Everything the engine emitted for the page, whatever its role."""
        cells = [cell for table in self.tables or [] for row in table for cell in row]
        around = (self.headers or [], self.footnotes or [], self.footers or [])
        return [*around[0], *self.body, *cells, *around[1], *around[2]]


@dataclass(slots=True)
class Extraction:
    """A whole document: its pages, and the seconds the engine took (parsing included)."""

    engine: str
    pages: list[PageExtraction]
    seconds: float


@dataclass(frozen=True, slots=True)
class Peer:
    """An engine: its label, what it produces, and the function that runs it on PDF bytes."""

    name: str
    label: str
    run: Callable[[bytes], list[PageExtraction]]
    tables: bool = False
    running_lines: bool = False
    footnotes: bool = False
    ocr: bool = False

    def extract(self, data: bytes) -> Extraction:
        started = time.perf_counter()
        pages = self.run(data)
        return Extraction(self.name, pages, time.perf_counter() - started)


def _pdfplumber(data: bytes) -> list[PageExtraction]:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return [PageExtraction(body=[page.extract_text() or ""]) for page in pdf.pages]


def _pdfminer(data: bytes) -> list[PageExtraction]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextContainer

    pages = []
    for layout in extract_pages(io.BytesIO(data), laparams=LAParams()):
        texts = [box.get_text() for box in layout if isinstance(box, LTTextContainer)]
        pages.append(PageExtraction(body=texts))
    return pages


@cache
def _docling_parser() -> Any:
    from docling_parse.pdf_parser import DoclingPdfParser

    return DoclingPdfParser(loglevel="fatal")


def _docling_parse(data: bytes) -> list[PageExtraction]:
    from docling_parse.pdf_parser import ContentConfig, ContentLevel

    # Text lines only: characters are computed (lines are built from them) but not
    # copied into Python, and shapes and bitmaps are skipped.
    config = ContentConfig(
        char_cells_content_level=ContentLevel.COMPUTE,
        word_cells_content_level=ContentLevel.SKIP,
        line_cells_content_level=ContentLevel.COMPUTE_AND_MATERIALIZE,
        shapes_content_level=ContentLevel.SKIP,
        bitmaps_content_level=ContentLevel.SKIP,
        include_bitmap_bytes=False,
    )
    document = _docling_parser().load(io.BytesIO(data), lazy=True, content_config=config)
    try:
        return [
            PageExtraction(body=[cell.text for cell in page.textline_cells])
            for _, page in document.iterate_pages()
        ]
    finally:
        document.unload()


def _grid(rows: Any) -> Table:
    """Our table rows as a grid, each cell at the column its spans put it in."""
    taken: set[tuple[int, int]] = set()
    grid: dict[tuple[int, int], str] = {}
    for r, row in enumerate(rows):
        c = 0
        for cell in row.cells:
            while (r, c) in taken:
                c += 1
            grid[(r, c)] = cell.text
            for dr in range(max(cell.row_span, 1)):
                for dc in range(max(cell.col_span, 1)):
                    taken.add((r + dr, c + dc))
            c += max(cell.col_span, 1)
    width = max((c for _, c in grid), default=-1) + 1
    return [[grid.get((r, c), "") for c in range(width)] for r in range(len(rows))]


@cache
def _engine() -> Any:
    from servicegrid.documents import TextLayerEngine

    return TextLayerEngine()


def _servicegrid(data: bytes) -> list[PageExtraction]:
    """Text blocks by type: running lines and footnotes apart, tables from ``result.tables``."""
    from servicegrid.documents import ExtractOptions

    result = _engine().process(data, filename="corpus.pdf", options=ExtractOptions())
    count = result.metadata.page_count
    roles: dict[str, list[list[str]]] = {
        role: [[] for _ in range(count)]
        for role in ("body", "page_header", "page_footer", "footnote")
    }
    tables: list[list[Table]] = [[] for _ in range(count)]
    for block in result.text_blocks:
        if block.type not in ("table", "figure"):
            role = block.type if block.type in roles else "body"
            roles[role][block.page_number - 1].append(block.text)
    for table in result.tables:
        tables[table.page_number - 1].append(_grid(table.rows))
    return [
        PageExtraction(
            body=roles["body"][i],
            tables=tables[i],
            headers=roles["page_header"][i],
            footers=roles["page_footer"][i],
            footnotes=roles["footnote"][i],
        )
        for i in range(count)
    ]


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer("ours", "servicegrid text-layer", _servicegrid, True, True, footnotes=True),
        Peer("pdfplumber", "pdfplumber extract_text", _pdfplumber),
        Peer("pdfminer", "pdfminer.six LAParams", _pdfminer),
        Peer("docling-parse", "docling-parse lines", _docling_parse),
    )
}


def available_peers() -> dict[str, Peer]:
    """The peers whose package is installed (docling-parse is optional).

    Ours reads scanned pages when its engine found an OCR program (Tesseract).
    """
    peers = dict(PEERS)
    peers["ours"] = replace(peers["ours"], ocr=getattr(_engine(), "ocr", None) is not None)
    try:
        import docling_parse  # noqa: F401
    except ImportError:
        del peers["docling-parse"]
    return peers
