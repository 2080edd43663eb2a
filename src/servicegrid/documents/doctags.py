"""Parse a vision model's page answer (DocTags, or markdown) and build the Docling result.

DocTags is Docling's page markup: ``<title>``, ``<section_header_level_N>``, ``<text>``,
``<caption>``, ``<otsl>`` tables, ``<picture>`` and friends, each optionally starting
with four ``<loc_N>`` tokens (x0, y0, x1, y1 on a 0..500 grid of the page, from its
top-left corner). An answer with no DocTags in it is read as markdown, whose elements
carry no location: their box is the whole page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from servicegrid.documents._page import Box, Cell
from servicegrid.documents.engine import ExtractOptions
from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = [
    "GRID",
    "Element",
    "ElementKind",
    "ParsedPage",
    "build_result",
    "looks_like_doctags",
    "otsl_rows",
    "parse_doctags",
    "parse_markdown",
    "parse_page",
]

GRID: Final = 500

ElementKind = Literal[
    "title", "heading", "paragraph", "caption", "page_header", "page_footer", "table", "figure"
]
Rows = tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True, slots=True)
class Element:
    """One page element in reading order; ``box`` is in points, inside the page."""

    kind: ElementKind
    box: Box
    text: str = ""
    level: int = 0
    rows: Rows = ()
    caption: Element | None = None


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """One page's elements; ``number`` is the page's 1-based number in the document."""

    number: int
    elements: tuple[Element, ...]
    format: Literal["doctags", "markdown"]


_TEXT_KINDS: Final[dict[str, ElementKind]] = {
    "title": "title",
    "text": "paragraph",
    "paragraph": "paragraph",
    "list_item": "paragraph",
    "footnote": "paragraph",
    "formula": "paragraph",
    "code": "paragraph",
    "reference": "paragraph",
    "caption": "caption",
    "page_header": "page_header",
    "page_footer": "page_footer",
}
_HEADING: Final = re.compile(r"section_header(?:_level_(\d+))?")
_TABLES: Final = frozenset({"otsl"})
_PICTURES: Final = frozenset({"picture", "chart"})
_CONTAINERS: Final = frozenset({"doctag", "unordered_list", "ordered_list", "group"})
_ORIGIN_CELLS: Final = frozenset({"fcel", "ecel", "ched", "rhed", "srow"})
_MERGED_CELLS: Final = frozenset({"lcel", "ucel", "xcel"})
_CELLS: Final = _ORIGIN_CELLS | _MERGED_CELLS | {"nl"}

_TOKEN: Final = re.compile(r"<(/?)([A-Za-z_][A-Za-z0-9_]*)>")
_LOC: Final = re.compile(r"loc_(\d+)")
_HINT: Final = re.compile(
    r"<(?:doctag|otsl|picture|chart|title|text|caption|page_header|page_footer|list_item"
    r"|section_header(?:_level_\d+)?|loc_\d+)>"
)
_FENCE: Final = re.compile(r"^\s*```.*$", re.MULTILINE)


def parse_page(answer: str, *, number: int, width: float, height: float) -> ParsedPage:
    """Read one page's answer: DocTags when it has any, markdown otherwise."""
    answer = _FENCE.sub("", answer)
    if looks_like_doctags(answer):
        return ParsedPage(number, parse_doctags(answer, width=width, height=height), "doctags")
    return ParsedPage(number, parse_markdown(answer, width=width, height=height), "markdown")


def looks_like_doctags(answer: str) -> bool:
    return _HINT.search(answer) is not None


# --- DocTags ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["open", "close", "loc", "text"]
    value: str


@dataclass(slots=True)
class _Raw:
    """What one element holds: its location tokens, text, OTSL cells, nested captions."""

    locs: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    cells: list[tuple[str, list[str]]] = field(default_factory=list)
    captions: list[_Raw] = field(default_factory=list)


def _tokens(answer: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    for match in _TOKEN.finditer(answer):
        if match.start() > position:
            tokens.append(_Token("text", answer[position : match.start()]))
        closing, name = match.group(1), match.group(2).lower()
        loc = _LOC.fullmatch(name)
        if loc is not None and not closing:
            tokens.append(_Token("loc", loc.group(1)))
        else:
            tokens.append(_Token("close" if closing else "open", name))
        position = match.end()
    if position < len(answer):
        tokens.append(_Token("text", answer[position:]))
    return tokens


def _is_block(name: str) -> bool:
    return (
        name in _TEXT_KINDS
        or name in _TABLES
        or name in _PICTURES
        or name in _CONTAINERS
        or _HEADING.fullmatch(name) is not None
    )


def _scan(tokens: Sequence[_Token], index: int, name: str) -> tuple[_Raw, int]:
    """Read the element opened just before ``index`` up to its closing tag.

    An element left unclosed ends where the next block element opens.
    """
    raw = _Raw()
    while index < len(tokens):
        token = tokens[index]
        if token.kind == "close" and token.value == name:
            return raw, index + 1
        if token.kind == "open":
            tag = token.value
            if tag == "caption" and name != "caption":
                caption, index = _scan(tokens, index + 1, "caption")
                raw.captions.append(caption)
                continue
            if name in _PICTURES and tag in _TABLES:
                _, index = _scan(tokens, index + 1, tag)  # a chart's data table
                continue
            if tag in _CELLS:
                raw.cells.append((tag, []))
            elif _is_block(tag):
                return raw, index
        elif token.kind == "loc":
            raw.locs.append(int(token.value))
        elif token.kind == "text":
            (raw.cells[-1][1] if raw.cells else raw.text).append(token.value)
        index += 1
    return raw, index


def parse_doctags(answer: str, *, width: float, height: float) -> tuple[Element, ...]:
    """The elements of a DocTags page; unknown tags are skipped, their text kept."""
    page = Box(0.0, 0.0, width, height)
    tokens = _tokens(answer)
    elements: list[Element] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.kind == "text" and token.value.strip():
            elements.append(Element("paragraph", page, _clean(token.value)))
        if token.kind != "open" or token.value in _CONTAINERS:
            continue
        name = token.value
        raw, index = _scan(tokens, index, name)
        element = _element(name, raw, page)
        if element is not None:
            elements.append(element)
    return tuple(elements)


def _element(name: str, raw: _Raw, page: Box) -> Element | None:
    box = _box(raw.locs, page, default=page)
    caption = _caption(raw.captions, page, default=box)
    if name in _TABLES:
        cells = [(tag, _clean(" ".join(parts))) for tag, parts in raw.cells]
        return Element("table", box, rows=otsl_rows(cells), caption=caption)
    if name in _PICTURES:
        return Element("figure", box, text=caption.text if caption else "", caption=caption)
    text = _clean(" ".join(raw.text))
    if not text:
        return None
    heading = _HEADING.fullmatch(name)
    if heading is not None:
        return Element("heading", box, text, level=max(1, int(heading.group(1) or 1)))
    kind = _TEXT_KINDS.get(name)
    # An unknown tag with text of its own still carries page content.
    return Element(kind or "paragraph", box, text)


def _caption(captions: Sequence[_Raw], page: Box, *, default: Box) -> Element | None:
    texts = [_clean(" ".join(raw.text)) for raw in captions]
    texts = [text for text in texts if text]
    if not texts:
        return None
    return Element("caption", _box(captions[0].locs, page, default=default), " ".join(texts))


def _box(locs: Sequence[int], page: Box, *, default: Box) -> Box:
    """Four grid locations as a box in points, clamped to the page."""
    if len(locs) < 4:
        return default
    x0, y0, x1, y1 = (min(max(value, 0), GRID) / GRID for value in locs[:4])
    return Box(
        min(x0, x1) * page.x1,
        min(y0, y1) * page.bottom,
        max(x0, x1) * page.x1,
        max(y0, y1) * page.bottom,
    )


def otsl_rows(cells: Sequence[tuple[str, str]]) -> Rows:
    """OTSL cell tokens (tag, text) as rows of cells with spans.

    ``lcel`` merges into the cell on its left, ``ucel`` into the one above, ``xcel``
    into both; a merged cell appears once, in its first row and column. A merge
    token with nothing to merge into starts an empty cell.
    """
    grid: list[list[tuple[str, str]]] = [[]]
    for tag, text in cells:
        if tag == "nl":
            grid.append([])
        else:
            grid[-1].append((tag, text))
    if not grid[-1]:
        grid.pop()
    owner: dict[tuple[int, int], tuple[int, int]] = {}
    extent: dict[tuple[int, int], list[int]] = {}
    texts: dict[tuple[int, int], str] = {}
    for r, row in enumerate(grid):
        for c, (tag, text) in enumerate(row):
            target: tuple[int, int] | None = None
            if tag in ("lcel", "xcel"):
                target = owner.get((r, c - 1))
            if tag in ("ucel", "xcel") and target is None:
                target = owner.get((r - 1, c))
            if target is None:
                target = (r, c)
                texts[target] = "" if tag in _MERGED_CELLS else text
                extent[target] = [r, c]
            owner[(r, c)] = target
            extent[target][0] = max(extent[target][0], r)
            extent[target][1] = max(extent[target][1], c)
    return tuple(
        tuple(
            Cell(texts[(r, c)], extent[(r, c)][0] - r + 1, extent[(r, c)][1] - c + 1)
            for c in range(len(row))
            if (r, c) in texts
        )
        for r, row in enumerate(grid)
    )


def _clean(text: str) -> str:
    return " ".join(text.split())


# --- markdown --------------------------------------------------------------------------

_MD_HEADING: Final = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$")
_MD_IMAGE: Final = re.compile(r"^!\[([^\]]*)\]\([^)]*\)$")
_MD_LIST: Final = re.compile(r"^(?:[-*+]|\d+[.)])\s+(.*)$")
_MD_RULE: Final = re.compile(r"^:?-+:?$")
_MD_PIPE: Final = re.compile(r"(?<!\\)\|")
_MD_EMPHASIS: Final = re.compile(r"\*\*|__")


def parse_markdown(answer: str, *, width: float, height: float) -> tuple[Element, ...]:
    """Headings (``#`` = level 1), paragraphs, list items, pipe tables, ``![caption](...)``."""
    page = Box(0.0, 0.0, width, height)
    elements: list[Element] = []
    paragraph: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if paragraph:
            elements.append(Element("paragraph", page, _md_text(" ".join(paragraph))))
            paragraph.clear()
        if table:
            elements.append(Element("table", page, rows=_md_rows(table)))
            table.clear()

    for raw_line in answer.splitlines():
        line = raw_line.strip()
        if line.startswith("|"):
            if paragraph:
                flush()
            table.append(line)
            continue
        if table or not line:
            flush()
        if not line:
            continue
        if heading := _MD_HEADING.match(line):
            flush()
            level = len(heading.group(1))
            elements.append(Element("heading", page, _md_text(heading.group(2)), level=level))
        elif image := _MD_IMAGE.match(line):
            flush()
            alt = _md_text(image.group(1))
            caption = Element("caption", page, alt) if alt else None
            elements.append(Element("figure", page, alt, caption=caption))
        elif item := _MD_LIST.match(line):
            flush()
            elements.append(Element("paragraph", page, _md_text(item.group(1))))
        else:
            paragraph.append(line)
    flush()
    return tuple(e for e in elements if e.text or e.kind in ("table", "figure"))


def _md_text(text: str) -> str:
    return _clean(_MD_EMPHASIS.sub("", text))


def _md_rows(lines: Iterable[str]) -> Rows:
    rows: list[tuple[Cell, ...]] = []
    for line in lines:
        body = line.strip().removeprefix("|")
        if body.endswith("|") and not body.endswith("\\|"):
            body = body[:-1]
        texts = [_md_text(cell.replace("\\|", "|")) for cell in _MD_PIPE.split(body)]
        if all(_MD_RULE.match(text) for text in texts):
            continue
        rows.append(tuple(Cell(text, 1, 1) for text in texts))
    return tuple(rows)


# --- result ----------------------------------------------------------------------------


def build_result(
    pages: Sequence[ParsedPage], options: ExtractOptions, *, fallback_title: str = ""
) -> pb.DocTagsResult:
    """Everything but ``metadata``, in the pages' reading order.

    The title is the first ``title`` element, else ``fallback_title``. A section runs
    from its heading to the next heading at the same or a higher level; lists that
    ``options`` turn off stay empty, in sections too.
    """
    result = pb.DocTagsResult()
    titles = (e.text for page in pages for e in page.elements if e.kind == "title")
    result.document.title = next(titles, fallback_title)
    open_sections: list[pb.Section] = []
    for page in pages:
        for element in page.elements:
            if element.kind == "heading":
                while open_sections and open_sections[-1].level >= element.level:
                    open_sections.pop()
                section = result.document.sections.add(title=element.text, level=element.level)
                open_sections.append(section)
            elif element.kind == "paragraph":
                paragraph = pb.Paragraph(
                    text=element.text, page_number=page.number, bbox=element.box.to_proto()
                )
                result.document.paragraphs.append(paragraph)
                for section in open_sections:
                    section.paragraphs.append(paragraph)
            elif element.kind == "table" and options.tables:
                table = _table(element, page.number)
                result.tables.append(table)
                for section in open_sections:
                    section.tables.append(table)
            elif element.kind == "figure" and options.figures:
                figure = pb.Figure(
                    caption=element.caption.text if element.caption else "",
                    page_number=page.number,
                    bbox=element.box.to_proto(),
                )
                result.figures.append(figure)
                for section in open_sections:
                    section.figures.append(figure)
            if options.text_blocks:
                result.text_blocks.extend(_text_blocks(element, page.number))
    return result


def _table(element: Element, page_number: int) -> pb.Table:
    return pb.Table(
        caption=element.caption.text if element.caption else "",
        rows=[
            pb.TableRow(
                cells=[
                    pb.TableCell(text=cell.text, row_span=cell.row_span, col_span=cell.col_span)
                    for cell in row
                ]
            )
            for row in element.rows
        ],
        page_number=page_number,
        bbox=element.box.to_proto(),
    )


def _text_blocks(element: Element, page_number: int) -> list[pb.TextBlock]:
    """The element's block, and its caption's block on the side the caption sits."""
    if element.kind == "table":
        text = "\n".join(" | ".join(cell.text for cell in row) for row in element.rows)
    else:
        text = element.text
    blocks = [_block(text, element.kind, page_number, element.box)]
    caption = element.caption
    if caption is not None:
        block = _block(caption.text, "caption", page_number, caption.box)
        if caption.box.top < element.box.top:
            blocks.insert(0, block)
        else:
            blocks.append(block)
    return blocks


def _block(text: str, kind: str, page_number: int, box: Box) -> pb.TextBlock:
    return pb.TextBlock(text=text, type=kind, page_number=page_number, bbox=box.to_proto())
