"""The text-layer engine's layout: reading order across columns, unruled tables, every word
once, list items, footnotes, and words broken by a hyphen joined again."""

from __future__ import annotations

from collections import Counter

from fpdf import FPDF

from servicegrid.documents import ExtractOptions, TextLayerEngine
from servicegrid.documents._blocks import join_lines
from servicegrid.documents._page_data import Box, header_rows
from servicegrid.documents._reading_order import reading_order
from servicegrid.proto import docling_vlm_service_pb2 as pb

LEFT = [
    "LEFT-ONE The northern beach retreated by two metres over the year while the dunes "
    "behind it held their line against the spring tides.",
    "LEFT-TWO Sand fences installed in March trapped most of the windblown sand and the "
    "marram grass planted behind them took root quickly.",
]
RIGHT = [
    "RIGHT-ONE In the southern bay the dunes gained during the winter storms, since the "
    "prevailing wind carried sand from the exposed flats.",
    "RIGHT-TWO Monitoring continues monthly with drone surveys and fixed photo points so "
    "that changes can be compared season by season.",
]
TABLE = [
    ("Site", "Change (m)", "Survey"),
    ("North", "-2.0", "Drone"),
    ("South", "+1.5", "Photo"),
    ("East", "0.3", "Drone"),
]


def two_columns() -> bytes:
    """A title, two paragraphs in each of two columns, then an unruled table across both."""
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.set_xy(15, 15)
    pdf.multi_cell(180, 8, "Coastal Erosion Survey 2024", align="C")
    pdf.set_font("Helvetica", "", 10)
    for x, paragraphs in ((15, LEFT), (110, RIGHT)):
        y = 30.0
        for paragraph in paragraphs:
            pdf.set_xy(x, y)
            pdf.multi_cell(85, 5, paragraph, align="J")
            y = pdf.get_y() + 4
    y = 90.0
    for row in TABLE:
        for x, text in zip((20, 70, 120), row, strict=True):
            pdf.set_xy(x, y)
            pdf.cell(40, 5, text)
        y += 6
    return bytes(pdf.output())


def extract(pdf: bytes) -> pb.DocTagsResult:
    return TextLayerEngine().process(pdf, filename="layout.pdf", options=ExtractOptions())


def words(text: str) -> list[str]:
    return text.split()


def test_two_columns_are_read_one_after_the_other() -> None:
    result = extract(two_columns())
    assert result.document.title == "Coastal Erosion Survey 2024"
    assert [p.text for p in result.document.paragraphs] == [*LEFT, *RIGHT]


def test_an_unruled_table_is_found_with_its_cells() -> None:
    result = extract(two_columns())
    assert len(result.tables) == 1
    assert [[cell.text for cell in row.cells] for row in result.tables[0].rows] == [
        list(row) for row in TABLE
    ]
    assert result.tables[0].header_rows == 1  # words above columns of numbers


def test_a_header_row_is_told_by_bold_type_or_by_words_above_numbers() -> None:
    words_over_numbers = [["Site", "Change"], ["North", "-2.0"], ["South", "+1.5"]]
    assert header_rows(words_over_numbers, bold=[False, False, False]) == 1
    all_words = [["Site", "Survey"], ["North", "Drone"], ["South", "Photo"]]
    assert header_rows(all_words, bold=[False, False, False]) == 0
    assert header_rows(all_words, bold=[True, False, False]) == 1
    numbers_first = [["2019", "2020"], ["1.0", "2.0"], ["3.0", "4.0"]]
    assert header_rows(numbers_first, bold=[False, False, False]) == 0


def test_every_word_of_the_page_lands_in_one_place_only() -> None:
    result = extract(two_columns())
    found: Counter[str] = Counter()
    for block in result.text_blocks:
        if block.type == "table":
            continue
        found.update(words(block.text))
    for row in result.tables[0].rows:
        for cell in row.cells:
            found.update(words(cell.text))
    expected: Counter[str] = Counter(words("Coastal Erosion Survey 2024"))
    for text in (*LEFT, *RIGHT, *(cell for row in TABLE for cell in row)):
        expected.update(words(text))
    assert found == expected


def test_list_items_footnotes_and_broken_words() -> None:
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "", 11)
    pdf.set_xy(20, 20)
    pdf.multi_cell(170, 6, "The survey found three causes of the retreat:")
    for y, item in ((34, "- storm surges in the winter months"), (41, "- sand mining upstream")):
        pdf.set_xy(24, y)
        pdf.cell(160, 6, item)
    pdf.set_xy(20, 52)
    pdf.cell(170, 6, "The beach lost sediment to the long-")
    pdf.set_xy(20, 58)
    pdf.cell(170, 6, "shore drift as well.")
    pdf.set_font("Helvetica", "", 8)
    pdf.set_xy(20, 270)
    pdf.cell(170, 4, "1 Measured against the 2019 baseline survey.")
    result = extract(bytes(pdf.output()))
    kinds = [(block.type, block.text) for block in result.text_blocks]
    assert ("list_item", "- storm surges in the winter months") in kinds
    assert ("list_item", "- sand mining upstream") in kinds
    assert ("footnote", "1 Measured against the 2019 baseline survey.") in kinds
    assert ("paragraph", "The beach lost sediment to the longshore drift as well.") in kinds
    assert "1 Measured" not in " ".join(p.text for p in result.document.paragraphs)


def test_a_hyphen_is_kept_unless_it_breaks_a_word_across_lines() -> None:
    assert join_lines(["the long-", "shore drift"]) == "the longshore drift"
    assert join_lines(["in 2019-", "2020 the"]) == "in 2019- 2020 the"
    assert join_lines(["a well-", "Known case"]) == "a well- Known case"
    assert join_lines(["one", "two"]) == "one two"


def box(x0: float, top: float, x1: float, bottom: float) -> Box:
    return Box(x0, top, x1, bottom)


def test_reading_order_reads_bands_then_columns_left_to_right() -> None:
    boxes = [
        box(50, 20, 550, 40),  # 0: title across both columns
        *(box(50, 60 + 15 * i, 290, 72 + 15 * i) for i in range(4)),  # 1-4 left column
        *(box(310, 60 + 15 * i, 550, 72 + 15 * i) for i in range(4)),  # 5-8 right column
        box(50, 140, 550, 200),  # 9: a wide table
        *(box(50, 220 + 15 * i, 210, 232 + 15 * i) for i in range(3)),  # 10-12 three columns
        *(box(220, 220 + 15 * i, 380, 232 + 15 * i) for i in range(3)),  # 13-15
        *(box(390, 220 + 15 * i, 550, 232 + 15 * i) for i in range(3)),  # 16-18
    ]
    assert reading_order(boxes, gap=8) == list(range(19))
    right_to_left = reading_order(boxes, gap=8, rtl=True)
    assert right_to_left[:9] == [0, 5, 6, 7, 8, 1, 2, 3, 4]


def test_a_single_column_with_an_indented_list_is_read_top_down() -> None:
    boxes = [box(50, 20 + 15 * i, 60 if i % 2 else 550, 32 + 15 * i) for i in range(6)] + [
        box(70, 35, 300, 47),
        box(70, 65, 300, 77),
    ]
    assert reading_order(boxes, gap=8) == [0, 1, 6, 2, 3, 7, 4, 5]
