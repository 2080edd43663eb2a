"""DocTags/markdown parsing alone, and VLMEngine against a stand-in vision LLM."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Callable, Iterator

import httpx
import pytest

from servicegrid.documents import DocumentEngine, ExtractOptions
from servicegrid.documents._page import Box, Cell
from servicegrid.documents.doctags import (
    ParsedPage,
    build_result,
    looks_like_doctags,
    otsl_rows,
    parse_doctags,
    parse_markdown,
    parse_page,
)
from servicegrid.documents.pdf_input import render_page
from servicegrid.documents.vlm import DEFAULT_PROMPT, VLMEngine
from servicegrid.errors import (
    ConnectError,
    DeadlineExceeded,
    InternalError,
    RemoteError,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
)
from servicegrid.proto import docling_vlm_service_pb2 as pb
from servicegrid.testing import FakeClock
from tests.documents.conftest import Sample
from tests.support.faulty_server import free_port
from tests.support.openai_standin import OpenAIStandIn, Reply

A4 = (595.28, 841.89)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PAGE_ONE = """<doctag><page_header><loc_60><loc_14><loc_260><loc_20>Text Layers - working draft\
</page_header>
<title><loc_60><loc_43><loc_400><loc_60>A Study of Text Layers</title>
<section_header_level_1><loc_60><loc_71><loc_250><loc_82>1 Introduction</section_header_level_1>
<text><loc_60><loc_89><loc_440><loc_110>This is the first paragraph
of the introduction.</text>
<text><loc_60><loc_114><loc_400><loc_120>A second paragraph follows after a gap.</text>
<section_header_level_2><loc_60><loc_126><loc_200><loc_134>1.1 Background\
</section_header_level_2>
<text><loc_60><loc_138><loc_350><loc_145>Background paragraph text goes here.</text>
<otsl><loc_60><loc_158><loc_312><loc_194><caption><loc_60><loc_150><loc_260><loc_156>\
Table 1: Sample results</caption><ched>Name<lcel><ched>Unit<nl>\
<fcel>alpha<fcel>1.5<fcel>m<nl><ucel><fcel>2.25<ecel><nl></otsl>
<picture><loc_60><loc_225><loc_161><loc_279><caption><loc_60><loc_282><loc_250><loc_290>\
Figure 1: A red rectangle</caption></picture>
<text><loc_60><loc_320><loc_300><loc_327>Closing paragraph of page one.</text>
<page_footer><loc_60><loc_475><loc_100><loc_481>Page 1</page_footer>
</doctag>"""

PAGE_TWO = """<doctag>
<section_header_level_1><loc_60><loc_43><loc_200><loc_54>2 Methods</section_header_level_1>
<text><loc_60><loc_62><loc_350><loc_69>Methods paragraph on the second page.</text>
</doctag>"""

MARKDOWN = """```markdown
# A Study of Text Layers
## 1 Introduction
This is the first paragraph
of the introduction.

A **second** paragraph.

| Name | Value |
|------|------:|
| alpha | 1.5 |
| a \\| b | |

![Figure 1: A red rectangle](figure.png)
- a list item
```"""


def boxes(result: pb.DocTagsResult) -> Iterator[tuple[str, int, pb.BoundingBox]]:
    document = result.document
    for paragraph in document.paragraphs:
        yield f"paragraph {paragraph.text!r}", paragraph.page_number, paragraph.bbox
    for section in document.sections:
        for paragraph in section.paragraphs:
            yield "section paragraph", paragraph.page_number, paragraph.bbox
        for table in section.tables:
            yield "section table", table.page_number, table.bbox
        for figure in section.figures:
            yield "section figure", figure.page_number, figure.bbox
    for table in result.tables:
        yield "table", table.page_number, table.bbox
    for figure in result.figures:
        yield "figure", figure.page_number, figure.bbox
    for block in result.text_blocks:
        yield f"{block.type} {block.text!r}", block.page_number, block.bbox


def inside(box: pb.BoundingBox | Box, width: float = A4[0], height: float = A4[1]) -> bool:
    if isinstance(box, Box):
        box = box.to_proto()
    return (
        box.x >= 0
        and box.y >= 0
        and box.width >= 0
        and box.height >= 0
        and box.x + box.width <= width + 0.01
        and box.y + box.height <= height + 0.01
    )


def cells(table: pb.Table) -> list[list[tuple[str, int, int]]]:
    return [[(c.text, c.row_span, c.col_span) for c in row.cells] for row in table.rows]


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --- parsing alone ---------------------------------------------------------------------


def test_doctags_elements_in_reading_order() -> None:
    elements = parse_doctags(PAGE_ONE, width=A4[0], height=A4[1])
    assert [(e.kind, e.text, e.level) for e in elements if e.kind != "table"] == [
        ("page_header", "Text Layers - working draft", 0),
        ("title", "A Study of Text Layers", 0),
        ("heading", "1 Introduction", 1),
        ("paragraph", "This is the first paragraph of the introduction.", 0),
        ("paragraph", "A second paragraph follows after a gap.", 0),
        ("heading", "1.1 Background", 2),
        ("paragraph", "Background paragraph text goes here.", 0),
        ("figure", "Figure 1: A red rectangle", 0),
        ("paragraph", "Closing paragraph of page one.", 0),
        ("page_footer", "Page 1", 0),
    ]


def test_any_heading_level_and_a_bare_section_header() -> None:
    answer = (
        "<section_header_level_4>Deep</section_header_level_4>"
        "<section_header>Plain</section_header>"
    )
    elements = parse_doctags(answer, width=100, height=100)
    assert [(e.kind, e.text, e.level) for e in elements] == [
        ("heading", "Deep", 4),
        ("heading", "Plain", 1),
    ]


def test_otsl_table_with_col_span_row_span_and_caption() -> None:
    (table,) = [e for e in parse_doctags(PAGE_ONE, width=A4[0], height=A4[1]) if e.kind == "table"]
    assert table.rows == (
        (Cell("Name", 1, 2), Cell("Unit", 1, 1)),
        (Cell("alpha", 2, 1), Cell("1.5", 1, 1), Cell("m", 1, 1)),
        (Cell("2.25", 1, 1), Cell("", 1, 1)),
    )
    assert table.caption is not None
    assert table.caption.text == "Table 1: Sample results"
    assert table.caption.box.bottom <= table.box.top


def test_otsl_cross_cell_spans_both_ways() -> None:
    rows = otsl_rows(
        [
            ("fcel", "A"),
            ("lcel", ""),
            ("fcel", "B"),
            ("nl", ""),
            ("ucel", ""),
            ("xcel", ""),
            ("fcel", "C"),
            ("nl", ""),
        ]
    )
    assert rows == ((Cell("A", 2, 2), Cell("B", 1, 1)), (Cell("C", 1, 1),))


def test_otsl_merge_token_with_nothing_to_merge_into_starts_an_empty_cell() -> None:
    assert otsl_rows([("lcel", ""), ("fcel", "x")]) == ((Cell("", 1, 1), Cell("x", 1, 1)),)


def test_picture_with_nested_caption() -> None:
    answer = (
        "<picture><loc_10><loc_10><loc_110><loc_60><pie_chart>"
        "<caption><loc_10><loc_62><loc_110><loc_70>Figure 2: Shares</caption></picture>"
        "<picture><loc_10><loc_100><loc_50><loc_150></picture>"
    )
    first, second = parse_doctags(answer, width=500, height=500)
    assert (first.kind, first.text) == ("figure", "Figure 2: Shares")
    assert first.caption is not None
    assert first.caption.box == Box(10, 62, 110, 70)
    assert (second.kind, second.caption) == ("figure", None)


def test_loc_tokens_become_points_on_the_page() -> None:
    (title,) = parse_doctags(
        "<title><loc_60><loc_43><loc_400><loc_60>T</title>", width=A4[0], height=A4[1]
    )
    assert title.box.x0 == pytest.approx(60 / 500 * A4[0])
    assert title.box.top == pytest.approx(43 / 500 * A4[1])
    assert title.box.x1 == pytest.approx(400 / 500 * A4[0])
    assert title.box.bottom == pytest.approx(60 / 500 * A4[1])


def test_locations_are_clamped_and_ordered_inside_the_page() -> None:
    answer = "<text><loc_520><loc_700><loc_450><loc_480>Edge</text>"
    (element,) = parse_doctags(answer, width=A4[0], height=A4[1])
    assert element.box == Box(450 / 500 * A4[0], 480 / 500 * A4[1], A4[0], A4[1])
    assert inside(element.box)


def test_element_without_locations_covers_the_page() -> None:
    (element,) = parse_doctags("<text>No place</text>", width=200, height=300)
    assert element.box == Box(0, 0, 200, 300)


def test_unclosed_elements_end_where_the_next_begins() -> None:
    elements = parse_doctags("<doctag><text>First<text>Second<otsl><fcel>x", width=1, height=1)
    assert [(e.kind, e.text) for e in elements] == [
        ("paragraph", "First"),
        ("paragraph", "Second"),
        ("table", ""),
    ]
    assert elements[2].rows == ((Cell("x", 1, 1),),)


def test_markdown_fallback() -> None:
    page = parse_page(MARKDOWN, number=3, width=A4[0], height=A4[1])
    assert page.format == "markdown"
    assert page.number == 3
    summary = [(e.kind, e.text, e.level) for e in page.elements]
    assert summary == [
        ("heading", "A Study of Text Layers", 1),
        ("heading", "1 Introduction", 2),
        ("paragraph", "This is the first paragraph of the introduction.", 0),
        ("paragraph", "A second paragraph.", 0),
        ("table", "", 0),
        ("figure", "Figure 1: A red rectangle", 0),
        ("paragraph", "a list item", 0),
    ]
    table = page.elements[4]
    assert table.rows == (
        (Cell("Name", 1, 1), Cell("Value", 1, 1)),
        (Cell("alpha", 1, 1), Cell("1.5", 1, 1)),
        (Cell("a | b", 1, 1), Cell("", 1, 1)),
    )
    assert all(e.box == Box(0, 0, A4[0], A4[1]) for e in page.elements)


def test_markdown_heading_closing_hashes_and_emphasis() -> None:
    elements = parse_markdown("### **Results** ###\n\n__Bold__ text", width=10, height=20)
    assert [(e.kind, e.text, e.level) for e in elements] == [
        ("heading", "Results", 3),
        ("paragraph", "Bold text", 0),
    ]


def test_doctags_win_over_markdown_and_fences_are_dropped() -> None:
    assert looks_like_doctags(PAGE_TWO)
    assert not looks_like_doctags(MARKDOWN)
    page = parse_page("```\n" + PAGE_TWO + "\n```", number=2, width=A4[0], height=A4[1])
    assert page.format == "doctags"
    assert [e.text for e in page.elements] == ["2 Methods", "Methods paragraph on the second page."]


def test_build_result_sections_and_caption_blocks() -> None:
    pages = [
        parse_page(PAGE_ONE, number=1, width=A4[0], height=A4[1]),
        parse_page(PAGE_TWO, number=2, width=A4[0], height=A4[1]),
    ]
    result = build_result(pages, ExtractOptions(), fallback_title="ignored")
    assert result.document.title == "A Study of Text Layers"
    intro, background, methods = result.document.sections
    assert [(s.title, s.level) for s in (intro, background, methods)] == [
        ("1 Introduction", 1),
        ("1.1 Background", 2),
        ("2 Methods", 1),
    ]
    assert len(intro.paragraphs) == 4
    assert [p.text for p in background.paragraphs] == [
        "Background paragraph text goes here.",
        "Closing paragraph of page one.",
    ]
    assert len(background.tables) == len(intro.tables) == 1
    assert len(background.figures) == 1
    assert [p.text for p in methods.paragraphs] == ["Methods paragraph on the second page."]
    types = [b.type for b in result.text_blocks if b.page_number == 1]
    assert types == [
        "page_header",
        "title",
        "heading",
        "paragraph",
        "paragraph",
        "heading",
        "paragraph",
        "caption",
        "table",
        "figure",
        "caption",
        "paragraph",
        "page_footer",
    ]
    table_block = result.text_blocks[8]
    assert table_block.text.splitlines() == ["Name | Unit", "alpha | 1.5 | m", "2.25 | "]


def test_build_result_falls_back_to_the_given_title() -> None:
    page = ParsedPage(1, parse_doctags(PAGE_TWO, width=1, height=1), "doctags")
    assert build_result([page], ExtractOptions(), fallback_title="Meta").document.title == "Meta"


# --- the engine against the stand-in ---------------------------------------------------


@pytest.fixture
def llm() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(model="standin-vlm") as server:
        yield server


@pytest.fixture
def vlm(llm: OpenAIStandIn) -> Iterator[VLMEngine]:
    with VLMEngine(llm.base_url, llm.model, timeout=30) as engine:
        yield engine


def test_is_a_document_engine(vlm: VLMEngine) -> None:
    assert isinstance(vlm, DocumentEngine)
    assert vlm.name == "vlm:standin-vlm"


def test_two_pages_end_to_end(vlm: VLMEngine, llm: OpenAIStandIn, sample: Sample) -> None:
    llm.queue(Reply(PAGE_ONE), Reply(PAGE_TWO))
    result = vlm.process(sample.data, filename="sample.pdf", options=ExtractOptions())

    assert result.document.title == "A Study of Text Layers"
    assert [(s.title, s.level) for s in result.document.sections] == [
        ("1 Introduction", 1),
        ("1.1 Background", 2),
        ("2 Methods", 1),
    ]
    (table,) = result.tables
    assert cells(table) == [
        [("Name", 1, 2), ("Unit", 1, 1)],
        [("alpha", 2, 1), ("1.5", 1, 1), ("m", 1, 1)],
        [("2.25", 1, 1), ("", 1, 1)],
    ]
    assert table.caption == "Table 1: Sample results"
    (figure,) = result.figures
    assert figure.caption == "Figure 1: A red rectangle"
    assert figure.page_number == 1
    assert figure.bbox.x == pytest.approx(60 / 500 * A4[0], abs=0.01)
    assert figure.bbox.height == pytest.approx(54 / 500 * A4[1], abs=0.01)
    assert [p.page_number for p in result.document.paragraphs] == [1, 1, 1, 1, 2]
    seen = 0
    for what, page_number, box in boxes(result):
        seen += 1
        assert page_number in (1, 2), what
        assert inside(box), what
    assert seen > 20


def test_one_request_per_page_with_model_prompt_and_png(
    vlm: VLMEngine, llm: OpenAIStandIn, sample: Sample
) -> None:
    vlm.process(sample.data, filename="sample.pdf", options=ExtractOptions())
    requests = llm.requests
    assert len(requests) == 2
    for request in requests:
        assert request.model == "standin-vlm"
        assert request.texts == [DEFAULT_PROMPT]
        assert "authorization" not in request.headers
        (url,) = request.image_urls
        prefix = "data:image/png;base64,"
        assert url.startswith(prefix)
        width, height = png_size(base64.b64decode(url[len(prefix) :]))
        assert width == pytest.approx(A4[0] * 144 / 72, abs=1)
        assert height == pytest.approx(A4[1] * 144 / 72, abs=1)


def test_page_range_sends_and_returns_only_page_two(
    vlm: VLMEngine, llm: OpenAIStandIn, sample: Sample
) -> None:
    llm.queue(Reply(PAGE_TWO))
    options = ExtractOptions(first_page=2, last_page=2)
    result = vlm.process(sample.data, filename="sample.pdf", options=options)

    (request,) = llm.requests
    (url,) = request.image_urls
    sent = base64.b64decode(url.split(",", 1)[1])
    assert sent == render_page(sample.data, 2, dpi=144).png
    assert sent != render_page(sample.data, 1, dpi=144).png
    assert result.document.title == ""
    assert [s.title for s in result.document.sections] == ["2 Methods"]
    assert {page for _, page, _ in boxes(result)} == {2}
    assert result.metadata.page_count == 2


@pytest.mark.parametrize(
    ("options", "empty"),
    [
        (ExtractOptions(tables=False), "tables"),
        (ExtractOptions(figures=False), "figures"),
        (ExtractOptions(text_blocks=False), "text_blocks"),
    ],
)
def test_options_turn_lists_off(
    vlm: VLMEngine, llm: OpenAIStandIn, sample: Sample, options: ExtractOptions, empty: str
) -> None:
    llm.queue(Reply(PAGE_ONE), Reply(PAGE_TWO), Reply(PAGE_ONE), Reply(PAGE_TWO))
    full = vlm.process(sample.data, filename="sample.pdf", options=ExtractOptions())
    result = vlm.process(sample.data, filename="sample.pdf", options=options)
    assert len(getattr(result, empty)) == 0
    for kept in {"tables", "figures", "text_blocks"} - {empty}:
        assert len(getattr(result, kept)) > 0
    if empty in {"tables", "figures"}:
        assert all(len(getattr(section, empty)) == 0 for section in result.document.sections)
    assert result.document.paragraphs == full.document.paragraphs


class _SteppingClock(FakeClock):
    """Moves a quarter of a second on every read."""

    def now(self) -> float:
        self.advance(0.25)
        return super().now()


def test_metadata(llm: OpenAIStandIn, sample: Sample) -> None:
    engine = VLMEngine(llm.base_url, "m-1", clock=_SteppingClock())
    with engine:
        result = engine.process(sample.data, filename="report.pdf", options=ExtractOptions())
    metadata = result.metadata
    assert metadata.filename == "report.pdf"
    assert metadata.page_count == 2
    assert metadata.processing_model == "vlm:m-1"
    assert metadata.processing_time_ms == 250
    assert metadata.checksum == hashlib.sha256(sample.data).hexdigest()


def test_markdown_answer_end_to_end(vlm: VLMEngine, llm: OpenAIStandIn, sample: Sample) -> None:
    llm.queue(Reply(MARKDOWN))
    options = ExtractOptions(last_page=1)
    result = vlm.process(sample.data, filename="sample.pdf", options=options)
    assert [(s.title, s.level) for s in result.document.sections] == [
        ("A Study of Text Layers", 1),
        ("1 Introduction", 2),
    ]
    assert len(result.tables) == 1
    assert result.figures[0].caption == "Figure 1: A red rectangle"
    for what, page_number, box in boxes(result):
        assert page_number == 1, what
        assert (box.x, box.y) == (0, 0), what
        assert (box.width, box.height) == pytest.approx(A4, abs=0.01), what


def test_api_key_is_sent_as_bearer(llm: OpenAIStandIn, blank_pdf: Callable[[int], bytes]) -> None:
    with VLMEngine(llm.base_url, llm.model, api_key="sk-test") as engine:
        engine.process(blank_pdf(1), filename="a.pdf", options=ExtractOptions())
    (request,) = llm.requests
    assert request.headers["authorization"] == "Bearer sk-test"


def test_standin_lists_its_model(llm: OpenAIStandIn) -> None:
    answer = httpx.get(f"{llm.base_url}/models", timeout=10)
    assert answer.status_code == 200
    assert [model["id"] for model in answer.json()["data"]] == ["standin-vlm"]


def test_injected_client_with_extra_body_is_used_and_left_open(sample: Sample) -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        content = [{"type": "text", "text": PAGE_TWO}]
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    engine = VLMEngine(
        "http://vlm.invalid/v1/",
        "granite-docling",
        max_tokens=4096,
        extra_body={"skip_special_tokens": False},
        client=client,
    )
    with engine:
        result = engine.process(sample.data, filename="s.pdf", options=ExtractOptions(first_page=2))
    assert [s.title for s in result.document.sections] == ["2 Methods"]
    (body,) = seen
    assert body["max_tokens"] == 4096
    assert body["skip_special_tokens"] is False
    assert not client.is_closed
    client.close()


# --- errors ----------------------------------------------------------------------------


def test_http_500_is_a_server_error_without_retry(
    vlm: VLMEngine, llm: OpenAIStandIn, sample: Sample
) -> None:
    llm.queue(Reply(status=500))
    with pytest.raises(InternalError) as caught:
        vlm.process(sample.data, filename="sample.pdf", options=ExtractOptions())
    assert isinstance(caught.value, ServerError)
    assert caught.value.retryable
    assert caught.value.service == "vlm:standin-vlm"
    assert "HTTP 500" in str(caught.value)
    assert len(llm.requests) == 1


def test_http_503_on_page_two_is_service_unavailable(
    vlm: VLMEngine, llm: OpenAIStandIn, sample: Sample
) -> None:
    llm.queue(Reply(PAGE_ONE), Reply(status=503))
    with pytest.raises(ServiceUnavailableError):
        vlm.process(sample.data, filename="sample.pdf", options=ExtractOptions())
    assert len(llm.requests) == 2


def test_unreachable_endpoint_is_a_connect_error(sample: Sample) -> None:
    engine = VLMEngine(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=10)
    with engine, pytest.raises(ConnectError) as caught:
        engine.process(sample.data, filename="sample.pdf", options=ExtractOptions())
    assert caught.value.grpc_code == "UNAVAILABLE"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_answer_slower_than_the_timeout_is_deadline_exceeded(
    llm: OpenAIStandIn, sample: Sample
) -> None:
    llm.queue(Reply(PAGE_ONE, delay=30))
    engine = VLMEngine(llm.base_url, llm.model, timeout=0.5)
    with engine, pytest.raises(DeadlineExceeded) as caught:
        engine.process(sample.data, filename="sample.pdf", options=ExtractOptions())
    assert "page 1" in str(caught.value)


@pytest.mark.parametrize(
    "reply",
    [Reply(no_choices=True), Reply(""), Reply("  \n ")],
    ids=["no-choices", "empty", "blank"],
)
def test_answer_without_content_is_a_remote_error(
    vlm: VLMEngine, llm: OpenAIStandIn, sample: Sample, reply: Reply
) -> None:
    llm.queue(reply)
    with pytest.raises(RemoteError, match="no page content") as caught:
        vlm.process(sample.data, filename="sample.pdf", options=ExtractOptions())
    assert type(caught.value) is RemoteError


def test_answer_that_is_not_json_is_a_remote_error(sample: Sample) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, text="hi")))
    engine = VLMEngine("http://vlm.invalid/v1", "m", client=client)
    with engine, pytest.raises(RemoteError, match="not JSON"):
        engine.process(sample.data, filename="sample.pdf", options=ExtractOptions())
    client.close()


@pytest.mark.parametrize(
    ("pdf", "options"),
    [
        (b"", ExtractOptions()),
        (b"not a pdf at all", ExtractOptions()),
        (b"%PDF-1.7\ntruncated", ExtractOptions()),
        (None, ExtractOptions(first_page=3)),
    ],
    ids=["empty", "not-pdf", "truncated", "page-range"],
)
def test_bad_input_is_a_validation_error_before_any_request(
    vlm: VLMEngine,
    llm: OpenAIStandIn,
    sample: Sample,
    pdf: bytes | None,
    options: ExtractOptions,
) -> None:
    with pytest.raises(ValidationError):
        vlm.process(sample.data if pdf is None else pdf, filename="bad.pdf", options=options)
    assert llm.requests == []


def test_a_4xx_from_the_endpoint_is_failed_precondition_not_the_callers_fault(
    sample_pdf: bytes,
) -> None:
    from servicegrid.documents.vlm import VLMEngine
    from servicegrid.errors import FailedPrecondition

    with OpenAIStandIn(reply=Reply("unknown model", status=404)) as vlm:
        engine = VLMEngine(base_url=vlm.base_url, model="nope")
        try:
            with pytest.raises(FailedPrecondition, match="HTTP 404"):
                engine.process(sample_pdf, filename="s.pdf", options=ExtractOptions())
        finally:
            engine.close()
