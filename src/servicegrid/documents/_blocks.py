"""Group text lines into blocks and type them by font and shape: title, heading, caption,
paragraph, list item, footnote, running header and footer."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from servicegrid.documents._page import Box, Line

__all__ = ["Block", "BlockKind", "Layout", "build_layout", "is_caption_for"]

BlockKind = Literal[
    "title",
    "heading",
    "caption",
    "paragraph",
    "list_item",
    "footnote",
    "page_header",
    "page_footer",
]

# A line this much larger than the body text is a heading candidate.
_HEADING_RATIO: Final = 1.15
# A vertical gap wider than this share of the font size starts a new block.
_GAP_RATIO: Final = 0.6
_SIZE_TOLERANCE: Final = 0.5
_MAX_HEADING_LINES: Final = 3
_MAX_HEADING_CHARS: Final = 200
_MAX_BOLD_HEADING_CHARS: Final = 120
# Running headers and footers sit in this share of the page height at the top or bottom.
_MARGIN_BAND: Final = 0.08

_CAPTION: Final = re.compile(
    r"^(?:table|figure|fig\.)\s*[A-Z]?\d+(?:\.\d+)*(?P<rest>.*)$", re.IGNORECASE
)
# After the number: "Table 2: ...", "Figure 3. ...", "Fig. 4 - ..." or nothing at all.
_LABEL_ENDS: Final = (":", ".", "-", "–", "—", "|", ")")
_PAGE_NUMBER: Final = re.compile(
    r"^(?:page\s+)?(?:\d+|[ivxlc]+)(?:\s*(?:/|of)\s*\d+)?$", re.IGNORECASE
)
_DIGITS: Final = re.compile(r"\d+")
# A list item opens with a bullet, or a number or letter followed by "." or ")".
_LIST_MARKER: Final = re.compile(
    r"^(?:[•◦▪▫‣∙·●○■□➢►–—*-]|\(?(?:\d{1,3}|[a-z]|[ivx]{1,4})[.)])\s+\S"
)
# A footnote opens with its number or mark.
_FOOTNOTE_MARK: Final = re.compile(r"^(?:\d{1,3}|[¹²³⁴⁵⁶⁷⁸⁹⁰]{1,3}|[*†‡§¶])\s*\S")
# A footnote's font is at least this much smaller than the body's, below this share of the page.
_FOOTNOTE_SMALLER: Final = 0.9
_FOOTNOTE_BAND: Final = 0.6
# A word broken at a line's end: two letters and a hyphen (or a soft hyphen).
_BROKEN_WORD: Final = re.compile(r"[^\W\d_]{2}(?:-|\u00ad)$")
_TABLE_CAPTION: Final = re.compile(r"^table\b", re.IGNORECASE)
_FIGURE_CAPTION: Final = re.compile(r"^fig(?:ure\b|\.)", re.IGNORECASE)


@dataclass(slots=True)
class Block:
    """Consecutive lines of one kind.

    ``level`` is set for headings (1 = top). ``labelled`` marks a caption whose number
    is followed by punctuation or nothing ("Figure 2: ..."): it stays a caption even
    when no table or figure is near it.
    """

    kind: BlockKind
    lines: list[Line]
    level: int = 0
    labelled: bool = False

    @property
    def text(self) -> str:
        return join_lines([line.text for line in self.lines])

    @property
    def box(self) -> Box:
        box = self.lines[0].box
        for line in self.lines[1:]:
            box = box.union(line.box)
        return box

    @property
    def page_number(self) -> int:
        return self.lines[0].page_number

    @property
    def size(self) -> float:
        return self.lines[0].size

    @property
    def bold(self) -> bool:
        return self.lines[0].bold


@dataclass(frozen=True, slots=True)
class Layout:
    """The blocks in reading order, and the title block if one was found."""

    blocks: tuple[Block, ...]
    title: Block | None


def join_lines(texts: Sequence[str]) -> str:
    """Lines as running text; a word broken by a hyphen at a line's end, its rest in
    lower case on the next line, is joined again."""
    joined = ""
    for text in texts:
        if joined and _BROKEN_WORD.search(joined) and text[:1].islower():
            joined = joined[:-1] + text
        else:
            joined = f"{joined} {text}" if joined else text
    return joined


def is_caption_for(block: Block, target: Literal["table", "figure"]) -> bool:
    pattern = _TABLE_CAPTION if target == "table" else _FIGURE_CAPTION
    return block.kind == "caption" and pattern.match(block.text) is not None


def build_layout(
    lines: Sequence[Line], *, page_heights: Mapping[int, float], title_page: bool
) -> Layout:
    """Type ``lines`` (in reading order); the title is looked for on page 1 when ``title_page``."""
    body = _body_size(lines)
    blocks = _group(lines, heading_size=body * _HEADING_RATIO, body=body)
    _mark_running_lines(blocks, page_heights)
    _mark_footnotes(blocks, page_heights, body)
    title = _pick_title(blocks) if title_page else None
    for block in blocks:
        if block is title:
            block.kind = "title"
        elif block.kind == "heading" and _too_long_for_heading(block):
            block.kind = "paragraph"
        elif block.kind == "paragraph" and _bold_heading(block, body):
            block.kind = "heading"
    _assign_levels([block for block in blocks if block.kind == "heading"])
    return Layout(blocks=tuple(blocks), title=title)


def _body_size(lines: Sequence[Line]) -> float:
    """The font size that carries the most characters."""
    weights: Counter[float] = Counter()
    for line in lines:
        weights[round(line.size * 2) / 2] += len(line.text)
    return weights.most_common(1)[0][0] if weights else 0.0


def _role(line: Line, heading_size: float) -> BlockKind:
    if _CAPTION.match(line.text):
        return "caption"
    if line.size >= heading_size:
        return "heading"
    return "list_item" if _LIST_MARKER.match(line.text) else "paragraph"


def _labelled(text: str) -> bool:
    """A caption line whose number is followed by punctuation or nothing."""
    match = _CAPTION.match(text)
    if match is None:
        return False
    rest = match.group("rest").strip()
    return not rest or rest.startswith(_LABEL_ENDS)


def _group(lines: Sequence[Line], *, heading_size: float, body: float) -> list[Block]:
    blocks: list[Block] = []
    for line in lines:
        role = _role(line, heading_size)
        # In small type, a line opening with a mark starts the next footnote.
        opens_note = line.size <= body * _FOOTNOTE_SMALLER and _FOOTNOTE_MARK.match(line.text)
        if blocks and role != "caption" and not opens_note and _continues(blocks[-1], line, role):
            blocks[-1].lines.append(line)
        else:
            blocks.append(Block(kind=role, lines=[line], labelled=_labelled(line.text)))
    return blocks


def _continues(block: Block, line: Line, role: BlockKind) -> bool:
    previous = block.lines[-1]
    if line.page_number != previous.page_number or line.box.top < previous.box.top:
        return False
    if line.box.top - previous.box.bottom > _GAP_RATIO * max(line.size, previous.size):
        return False
    if abs(line.size - previous.size) > _SIZE_TOLERANCE:
        return False
    if block.kind in ("caption", "list_item"):
        # an item's next lines hang under its text, not under its marker
        return role == "paragraph" and (
            block.kind == "caption" or line.box.x0 > block.lines[0].box.x0 + 1.0
        )
    if role != block.kind or line.bold != previous.bold:
        return False
    # An indented first line starts a new paragraph.
    return block.kind != "paragraph" or line.box.x0 - previous.box.x0 <= line.size


def _mark_running_lines(blocks: Sequence[Block], page_heights: Mapping[int, float]) -> None:
    """Single lines in the top or bottom band that repeat across pages, or page numbers."""
    found: list[tuple[Block, BlockKind, str]] = []
    for block in blocks:
        height = page_heights[block.page_number]
        if len(block.lines) != 1 or block.kind not in ("paragraph", "heading"):
            continue
        if block.box.bottom <= height * _MARGIN_BAND:
            kind: BlockKind = "page_header"
        elif block.box.top >= height * (1 - _MARGIN_BAND):
            kind = "page_footer"
        else:
            continue
        # Page numbers inside the text differ from page to page.
        found.append((block, kind, _DIGITS.sub("#", block.text.lower())))
    pages: defaultdict[tuple[BlockKind, str], set[int]] = defaultdict(set)
    for block, kind, key in found:
        pages[(kind, key)].add(block.page_number)
    for block, kind, key in found:
        if len(pages[(kind, key)]) > 1 or _PAGE_NUMBER.match(block.text):
            block.kind = kind


def _mark_footnotes(
    blocks: Sequence[Block], page_heights: Mapping[int, float], body: float
) -> None:
    """Paragraphs in small type in the lower part of a page that open with a number or mark."""
    for block in blocks:
        if (
            block.kind == "paragraph"
            and block.size <= body * _FOOTNOTE_SMALLER
            and block.box.top >= page_heights[block.page_number] * _FOOTNOTE_BAND
            and _FOOTNOTE_MARK.match(block.text)
        ):
            block.kind = "footnote"


def _pick_title(blocks: Sequence[Block]) -> Block | None:
    candidates = [
        block
        for block in blocks
        if block.page_number == 1 and block.kind == "heading" and not _too_long_for_heading(block)
    ]
    if not candidates:
        return None
    largest = max(block.size for block in candidates)
    return next(block for block in candidates if block.size == largest)


def _too_long_for_heading(block: Block) -> bool:
    return len(block.lines) > _MAX_HEADING_LINES or len(block.text) > _MAX_HEADING_CHARS


def _bold_heading(block: Block, body: float) -> bool:
    """A single short bold line, at least body size, that does not read as a sentence."""
    return (
        len(block.lines) == 1
        and block.bold
        and block.size >= body - _SIZE_TOLERANCE
        and len(block.text) <= _MAX_BOLD_HEADING_CHARS
        and not block.text.endswith(".")
    )


def _assign_levels(headings: Sequence[Block]) -> None:
    """Larger sizes rank higher; at one size a bold heading ranks above a regular one."""
    styles = sorted({(round(block.size * 2) / 2, block.bold) for block in headings}, reverse=True)
    level_of = {style: index + 1 for index, style in enumerate(styles)}
    for block in headings:
        block.level = level_of[(round(block.size * 2) / 2, block.bold)]
