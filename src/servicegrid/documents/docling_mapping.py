"""Map a Docling ``DoclingDocument`` (docling-core) to the Docling result message.

The document is read through attributes only; docling-core is imported when a
document is mapped, never at import time. Items are taken in the document's
reading order (``iterate_items``), body and furniture layers. Text-block types are
the ones the other engines use: ``title``, ``heading``, ``paragraph``, ``caption``,
``page_header``, ``page_footer``, ``table``, ``figure``.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from servicegrid.documents._page import Box
from servicegrid.documents.engine import ExtractOptions
from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["PageSizes", "docling_to_result"]

PageSizes = Mapping[int, tuple[float, float]]
"""1-based page number -> (width, height) in points."""

_TABLES: Final = frozenset({"table", "document_index"})
_PICTURES: Final = frozenset({"picture", "chart"})
_AS_IS: Final = frozenset({"title", "caption", "page_header", "page_footer"})
_KEEP_SPACING: Final = frozenset({"code", "formula"})


@dataclass(frozen=True, slots=True)
class _Part:
    """One output element, in reading order; ``box`` is in points inside its page."""

    kind: str
    page: int
    box: Box
    text: str = ""
    level: int = 0
    table: pb.Table | None = None
    figure: pb.Figure | None = None
    caption: _Part | None = None


def docling_to_result(
    document: Any,
    *,
    page_sizes: PageSizes,
    options: ExtractOptions,
    fallback_title: str = "",
) -> pb.DocTagsResult:
    """Everything but ``metadata``, for the pages ``options`` select.

    Boxes are converted with the document's own page sizes (``document.pages``) to
    top-left points, scaled to ``page_sizes`` where those differ, and clamped to the
    page. The title is the first ``title`` item, else ``fallback_title``. A section
    runs from its heading to the next heading at the same or a higher level; lists
    that ``options`` turn off stay empty, in sections too.
    """
    result = pb.DocTagsResult()
    parts = list(_parts(document, page_sizes, options))
    result.document.title = next((p.text for p in parts if p.kind == "title"), fallback_title)
    open_sections: list[pb.Section] = []
    for part in parts:
        if part.kind == "heading":
            while open_sections and open_sections[-1].level >= part.level:
                open_sections.pop()
            section = result.document.sections.add(title=part.text, level=part.level)
            open_sections.append(section)
        elif part.kind == "paragraph":
            paragraph = pb.Paragraph(
                text=part.text, page_number=part.page, bbox=part.box.to_proto()
            )
            result.document.paragraphs.append(paragraph)
            for section in open_sections:
                section.paragraphs.append(paragraph)
        elif part.table is not None and options.tables:
            result.tables.append(part.table)
            for section in open_sections:
                section.tables.append(part.table)
        elif part.figure is not None and options.figures:
            result.figures.append(part.figure)
            for section in open_sections:
                section.figures.append(part.figure)
        if options.text_blocks:
            result.text_blocks.extend(_text_blocks(part))
    return result


def _parts(document: Any, sizes: PageSizes, options: ExtractOptions) -> Iterator[_Part]:
    first = options.first_page or 1
    last = options.last_page
    owned = _owned_captions(document)
    page = first
    inside_table: int | None = None  # the depth of the table whose descendants are skipped
    layers = importlib.import_module("docling_core.types.doc").ContentLayer
    for item, depth in document.iterate_items(
        included_content_layers={layers.BODY, layers.FURNITURE}
    ):
        if inside_table is not None and depth > inside_table:
            if _label(item) != "footnote":
                continue  # a table's captions and rich-cell content, read with the table
        else:
            inside_table = None
        label = _label(item)
        if label in _TABLES:
            inside_table = depth
        if getattr(item, "self_ref", None) in owned:
            continue
        prov = getattr(item, "prov", None) or ()
        page = int(prov[0].page_no) if prov else page
        if page < first or (last is not None and page > last):
            continue
        box = _box(prov[0].bbox if prov else None, page, document, sizes)
        if label in _TABLES and hasattr(item, "data"):
            yield _table(item, document, page, box, sizes)
        elif label in _PICTURES:
            yield _figure(item, document, page, box, sizes)
        elif isinstance(text := getattr(item, "text", None), str):
            text = text.strip() if label in _KEEP_SPACING else _clean(text)
            if not text:
                continue
            if label == "section_header":
                level = max(1, int(getattr(item, "level", 1) or 1))
                yield _Part("heading", page, box, text, level=level)
            else:
                yield _Part(label if label in _AS_IS else "paragraph", page, box, text)


def _owned_captions(document: Any) -> set[str]:
    """The references of caption items that belong to a table or a picture."""
    owned: set[str] = set()
    for item in (*getattr(document, "tables", ()), *getattr(document, "pictures", ())):
        owned.update(ref.cref for ref in getattr(item, "captions", ()))
    return owned


def _label(item: Any) -> str:
    label = getattr(item, "label", "")
    return str(getattr(label, "value", label))


def _clean(text: str) -> str:
    return " ".join(text.split())


def _table(item: Any, document: Any, page: int, box: Box, sizes: PageSizes) -> _Part:
    caption = _caption(item, document, page, box, sizes)
    table = pb.Table(
        caption=caption.text if caption else "",
        rows=_rows(item.data),
        page_number=page,
        bbox=box.to_proto(),
    )
    return _Part("table", page, box, table=table, caption=caption)


def _rows(data: Any) -> list[pb.TableRow]:
    """Rows of cells with spans; a merged cell appears once, in its first row and column."""
    origins: dict[tuple[int, int], Any] = {}
    for cell in getattr(data, "table_cells", ()):
        key = (int(cell.start_row_offset_idx), int(cell.start_col_offset_idx))
        if min(key) >= 0:
            origins.setdefault(key, cell)
    count = max([int(getattr(data, "num_rows", 0)), *(row + 1 for row, _ in origins)])
    rows = [pb.TableRow() for _ in range(count)]
    for (row, _), cell in sorted(origins.items()):
        rows[row].cells.add(
            text=_clean(str(cell.text)),
            row_span=max(1, int(cell.row_span)),
            col_span=max(1, int(cell.col_span)),
        )
    return rows


def _figure(item: Any, document: Any, page: int, box: Box, sizes: PageSizes) -> _Part:
    caption = _caption(item, document, page, box, sizes)
    text = caption.text if caption else ""
    figure = pb.Figure(
        caption=text, description=_description(item), page_number=page, bbox=box.to_proto()
    )
    return _Part("figure", page, box, text, figure=figure, caption=caption)


def _caption(item: Any, document: Any, page: int, box: Box, sizes: PageSizes) -> _Part | None:
    """The item's caption text, placed where its first caption item sits on the page."""
    text = _clean(item.caption_text(document))
    if not text:
        return None
    caption_box = box
    for ref in getattr(item, "captions", ())[:1]:
        prov = getattr(ref.resolve(document), "prov", None) or ()
        if prov and int(prov[0].page_no) == page:
            caption_box = _box(prov[0].bbox, page, document, sizes)
    return _Part("caption", page, caption_box, text)


def _description(item: Any) -> str:
    """A picture's description: ``meta.description``, else a description annotation."""
    found = getattr(getattr(getattr(item, "meta", None), "description", None), "text", None)
    if not isinstance(found, str) or not found.strip():
        with warnings.catch_warnings():  # ``annotations`` is deprecated in favour of ``meta``
            warnings.simplefilter("ignore", DeprecationWarning)
            annotations = getattr(item, "annotations", None) or ()
        texts = (
            getattr(a, "text", None)
            for a in annotations
            if getattr(a, "kind", None) == "description"
        )
        found = next((text for text in texts if isinstance(text, str) and text.strip()), "")
    return _clean(found)


def _box(bbox: Any, page: int, document: Any, sizes: PageSizes) -> Box:
    """``bbox`` (either origin) as top-left points inside the page; None: the whole page.

    A page with no known size gets an empty box at its origin.
    """
    source = _document_size(document, page)
    width, height = sizes.get(page) or source or (0.0, 0.0)
    if bbox is None:
        return Box(0.0, 0.0, width, height)
    source_width, source_height = source or (width, height)
    top_left = bbox.to_top_left_origin(source_height)
    scale_x = width / source_width if source_width > 0 else 1.0
    scale_y = height / source_height if source_height > 0 else 1.0
    x0, x1 = sorted((_clamp(top_left.l * scale_x, width), _clamp(top_left.r * scale_x, width)))
    y0, y1 = sorted((_clamp(top_left.t * scale_y, height), _clamp(top_left.b * scale_y, height)))
    return Box(x0, y0, x1, y1)


def _document_size(document: Any, page: int) -> tuple[float, float] | None:
    entry = (getattr(document, "pages", None) or {}).get(page)
    size = getattr(entry, "size", None)
    if size is None:
        return None
    return float(size.width), float(size.height)


def _clamp(value: float, limit: float) -> float:
    return min(max(float(value), 0.0), limit) if math.isfinite(value) else 0.0


def _text_blocks(part: _Part) -> list[pb.TextBlock]:
    """The part's block, and its caption's block on the side the caption sits."""
    text = part.text
    if part.table is not None:
        text = "\n".join(" | ".join(cell.text for cell in row.cells) for row in part.table.rows)
    blocks = [_block(text, part.kind, part.page, part.box)]
    caption = part.caption
    if caption is not None:
        block = _block(caption.text, "caption", caption.page, caption.box)
        if caption.box.top < part.box.top:
            blocks.insert(0, block)
        else:
            blocks.append(block)
    return blocks


def _block(text: str, kind: str, page: int, box: Box) -> pb.TextBlock:
    return pb.TextBlock(text=text, type=kind, page_number=page, bbox=box.to_proto())
