"""Build the Docling result from page data: captions, sections, reading order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from servicegrid.documents._blocks import Block, build_layout, is_caption_for
from servicegrid.documents._page import Box, Image, PageData, TableData
from servicegrid.documents.engine import ExtractOptions
from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["assemble"]

# How far (points) a caption may sit from its table or figure.
_CAPTION_REACH: Final = 48.0
_TOUCH: Final = 2.0
# The blocks that are running text: the document's paragraphs, a list item each.
_BODY: Final = frozenset({"paragraph", "list_item"})


@dataclass(frozen=True, slots=True)
class _Item:
    """One output element at its place in reading order."""

    page: int
    order: int
    box: Box
    block: Block | None = None
    table: pb.Table | None = None
    figure: pb.Figure | None = None


def assemble(
    pages: Sequence[PageData], options: ExtractOptions, *, fallback_title: str
) -> pb.DocTagsResult:
    """Everything but ``metadata``; lists that ``options`` turn off stay empty."""
    layout = build_layout(
        [line for page in pages for line in page.lines],
        page_heights={page.number: page.height for page in pages},
        title_page=any(page.number == 1 for page in pages),
    )
    tables = [table for page in pages for table in page.tables]
    images = [image for page in pages for image in page.images]
    table_captions = _match_captions(layout.blocks, tables, "table", prefer_below=False)
    figure_captions = _match_captions(layout.blocks, images, "figure", prefer_below=True)
    used = {id(block) for block in (*table_captions.values(), *figure_captions.values())}
    for block in layout.blocks:
        if block.kind == "caption" and not block.labelled and id(block) not in used:
            block.kind = "paragraph"

    items = [
        _Item(block.page_number, block.lines[0].order, block.box, block=block)
        for block in layout.blocks
    ]
    for index, table in enumerate(tables):
        caption = table_captions.get(index)
        items.append(_Item(table.page_number, table.order, table.box, table=_table(table, caption)))
    for index, image in enumerate(images):
        caption = figure_captions.get(index)
        items.append(
            _Item(image.page_number, image.order, image.box, figure=_figure(image, caption))
        )
    items.sort(key=lambda item: (item.page, item.order))

    result = pb.DocTagsResult()
    document = result.document
    if layout.title is not None:
        document.title = layout.title.text
    else:
        document.title = fallback_title
    document.paragraphs.extend(
        _paragraph(item.block)
        for item in items
        if item.block is not None and item.block.kind in _BODY
    )
    document.sections.extend(_sections(items, options))
    if options.tables:
        result.tables.extend(item.table for item in items if item.table is not None)
    if options.figures:
        result.figures.extend(item.figure for item in items if item.figure is not None)
    if options.text_blocks:
        result.text_blocks.extend(_text_block(item) for item in items)
    return result


def _match_captions(
    blocks: Sequence[Block],
    targets: Sequence[TableData | Image],
    target: Literal["table", "figure"],
    *,
    prefer_below: bool,
) -> dict[int, Block]:
    """Pair each target with at most one caption on its page, preferred side first."""
    pairs: list[tuple[int, float, int, int]] = []
    for target_index, item in enumerate(targets):
        for block_index, block in enumerate(blocks):
            if block.page_number != item.page_number or not is_caption_for(block, target):
                continue
            if not block.box.overlaps_x(item.box):
                continue
            below = block.box.top - item.box.bottom
            above = item.box.top - block.box.bottom
            if below >= -_TOUCH:
                distance, preferred = below, prefer_below
            elif above >= -_TOUCH:
                distance, preferred = above, not prefer_below
            else:
                continue
            if distance <= _CAPTION_REACH:
                pairs.append((0 if preferred else 1, distance, target_index, block_index))
    matched: dict[int, Block] = {}
    taken: set[int] = set()
    for _, _, target_index, block_index in sorted(pairs):
        if target_index not in matched and block_index not in taken:
            matched[target_index] = blocks[block_index]
            taken.add(block_index)
    return matched


def _table(table: TableData, caption: Block | None) -> pb.Table:
    return pb.Table(
        caption=caption.text if caption is not None else "",
        rows=[
            pb.TableRow(
                cells=[
                    pb.TableCell(text=cell.text, row_span=cell.row_span, col_span=cell.col_span)
                    for cell in row
                ]
            )
            for row in table.rows
        ],
        page_number=table.page_number,
        bbox=table.box.to_proto(),
        header_rows=table.header_rows,
    )


def _figure(image: Image, caption: Block | None) -> pb.Figure:
    return pb.Figure(
        caption=caption.text if caption is not None else "",
        page_number=image.page_number,
        bbox=image.box.to_proto(),
    )


def _paragraph(block: Block) -> pb.Paragraph:
    return pb.Paragraph(text=block.text, page_number=block.page_number, bbox=block.box.to_proto())


def _sections(items: Iterable[_Item], options: ExtractOptions) -> list[pb.Section]:
    """A section runs from its heading to the next heading at the same or a higher level."""
    sections: list[pb.Section] = []
    open_sections: list[pb.Section] = []
    for item in items:
        block = item.block
        if block is not None and block.kind == "heading":
            while open_sections and open_sections[-1].level >= block.level:
                open_sections.pop()
            section = pb.Section(title=block.text, level=block.level)
            sections.append(section)
            open_sections.append(section)
            continue
        for section in open_sections:
            if block is not None and block.kind in _BODY:
                section.paragraphs.append(_paragraph(block))
            elif item.table is not None and options.tables:
                section.tables.append(item.table)
            elif item.figure is not None and options.figures:
                section.figures.append(item.figure)
    return sections


def _text_block(item: _Item) -> pb.TextBlock:
    kind: str
    if item.block is not None:
        text, kind = item.block.text, item.block.kind
    elif item.table is not None:
        text = "\n".join(" | ".join(cell.text for cell in row.cells) for row in item.table.rows)
        kind = "table"
    else:
        text, kind = (item.figure.caption if item.figure is not None else ""), "figure"
    return pb.TextBlock(text=text, type=kind, page_number=item.page, bbox=item.box.to_proto())
