"""Cited answers: the prompt, citation parsing, the extractive fallback, and the LLM path
against real local OpenAI-compatible servers (:mod:`tests.support.openai_standin`,
:mod:`tests.support.llm_hosts`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicegrid.llm import DistributedLLMClient, LLMHost
from servicegrid.retrieval.answers import (
    NO_MATCH,
    Answer,
    build_messages,
    cited_numbers,
    compose_answer,
    extractive_answer,
)
from servicegrid.retrieval.chunks import Chunk, Hit
from servicegrid.retrieval.indexing import question_chunks
from tests.support.llm_hosts import LLMHostStandIn
from tests.support.openai_standin import OpenAIStandIn, Reply

QUESTION = Hit(
    Chunk(
        id="question:q-001:0",
        source="question",
        ref="q-001",
        title="Where do otters sleep?",
        text="Sea otters sleep floating on their backs. They hold paws so they do not drift apart.",
    ),
    0.9,
)
DOCUMENT = Hit(
    Chunk(
        id="document:abc:3:0",
        source="document",
        ref="report.pdf",
        page=3,
        text="River otters sleep in dens near water. The report counts 40 dens.",
    ),
    0.7,
)
UNRELATED = Hit(
    Chunk(id="question:q-002:0", source="question", ref="q-002", text="Badgers dig setts."), 0.1
)
HITS = [QUESTION, DOCUMENT, UNRELATED]


# ---- messages -----------------------------------------------------------------------------


def test_messages_number_and_label_the_sources() -> None:
    system, user = build_messages("Where do otters sleep?", HITS)
    assert system["role"] == "system"
    for rule in ("only", "[1]", "do not answer", "concise"):
        assert rule in system["content"]
    assert user["role"] == "user"
    content = user["content"]
    assert "[1] (question q-001: Where do otters sleep?) Sea otters sleep" in content
    assert "[2] (document report.pdf, page 3) River otters sleep" in content
    assert "[3] (question q-002) Badgers dig setts." in content
    assert content.index("[1]") < content.index("[2]") < content.index("[3]")
    assert content.endswith("Question: Where do otters sleep?")
    assert "About the user" not in content


def test_a_document_without_a_page_is_named_by_its_file() -> None:
    hit = Hit(Chunk(id="d", source="document", ref="notes.txt", text="Some notes."), 1.0)
    assert "[1] (document notes.txt) Some notes." in build_messages("q", [hit])[1]["content"]


def test_long_sources_are_cut() -> None:
    long_text = "otter " * 1000
    hit = Hit(Chunk(id="d", source="document", ref="big.pdf", page=1, text=long_text), 1.0)
    content = build_messages("otters", [hit])[1]["content"]
    source_line = next(line for line in content.splitlines() if line.startswith("[1]"))
    assert len(source_line) < 1600
    assert source_line.endswith("…")


def test_the_user_line_names_the_user_and_their_interests() -> None:
    user = {"full_name": "Ada Lovelace", "email": "ada@example.com", "interests": ["otters", "AI"]}
    content = build_messages("q", HITS, user_context=user)[1]["content"]
    assert "About the user (name: Ada Lovelace; interests: otters, AI)." in content
    assert "ada@example.com" not in content
    assert content.index("About the user") < content.index("Question:")


def test_an_empty_user_context_adds_no_line() -> None:
    content = build_messages("q", HITS, user_context={"interests": []})[1]["content"]
    assert "About the user" not in content


# ---- citations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [
        ("Otters float [1].", 3, (1,)),
        ("Both [2] and [1], again [2].", 3, (2, 1)),
        ("Grouped [1, 3] and [ 2 ].", 3, (1, 3, 2)),
        ("Adjacent [1][3].", 3, (1, 3)),
        ("Out of range [0] [4] [2].", 3, (2,)),
        ("No citations, [a], [] or (1).", 3, ()),
        ("Mixed [5, 1].", 3, (1,)),
    ],
)
def test_cited_numbers(text: str, count: int, expected: tuple[int, ...]) -> None:
    assert cited_numbers(text, count) == expected


# ---- extractive ---------------------------------------------------------------------------


def test_extractive_answer_picks_matching_sentences_in_hit_order() -> None:
    answer = extractive_answer("Where do river otters sleep?", HITS, max_sentences=2)
    assert answer == Answer(
        "Sea otters sleep floating on their backs. [1] River otters sleep in dens near water. [2]",
        "extractive",
        (1, 2),
    )


def test_extractive_answer_keeps_to_max_sentences() -> None:
    answer = extractive_answer("otters sleep dens", HITS, max_sentences=1)
    assert answer.text == "River otters sleep in dens near water. [2]"
    assert answer.used == (2,)


def test_extractive_answer_is_deterministic() -> None:
    first = extractive_answer("otters", HITS)
    assert all(extractive_answer("otters", HITS) == first for _ in range(5))


def test_extractive_answer_without_a_shared_word_quotes_the_top_hit() -> None:
    answer = extractive_answer("the and of", HITS)
    assert answer.text == "Sea otters sleep floating on their backs. [1]"
    assert answer.used == (1,)


def test_extractive_answer_needs_a_sentence() -> None:
    with pytest.raises(ValueError, match="max_sentences"):
        extractive_answer("otters", HITS, max_sentences=0)


def test_extractive_answer_splits_lines_and_skips_repeats() -> None:
    first = Hit(
        Chunk(id="a", source="document", ref="a.pdf", text="Otters swim\nOtters eat fish"), 1
    )
    again = Hit(Chunk(id="b", source="document", ref="b.pdf", text="Otters swim"), 0.5)
    answer = extractive_answer("otters", [first, again])
    assert answer.text == "Otters swim [1] Otters eat fish [1]"
    assert answer.used == (1,)


def test_extractive_answer_never_quotes_a_questions_tags_line() -> None:
    question = {"id": "q-1", "user_id": "u", "title": "Otters", "body": "Do otters swim?"}
    [chunk] = question_chunks({**question, "tags": ["otters", "swimming"]})
    assert "Tags: otters, swimming" in chunk.text  # searched ...

    answer = extractive_answer("otters swimming tags", [Hit(chunk, 1.0)], max_sentences=3)

    assert "Tags" not in answer.text  # ... never quoted
    assert answer.text == "Otters [1] Do otters swim? [1]"


def test_extractive_answer_without_hits() -> None:
    assert extractive_answer("anything", []) == Answer(NO_MATCH, "extractive", ())
    assert NO_MATCH == "No indexed question or document matches this query."


# ---- compose_answer against real servers --------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(model="standin-llm", reply=Reply("Sea otters float [1].")) as running:
        yield running


def client_for(url: str) -> DistributedLLMClient:
    return DistributedLLMClient([LLMHost(name="llm", url=url)], timeout=10.0)


async def test_an_llm_answer_comes_back_with_its_citations(server: OpenAIStandIn) -> None:
    server.queue(Reply("Sea otters sleep floating on their backs [1]."))
    before = len(server.requests)
    async with client_for(server.base_url) as llm:
        answer = await compose_answer(
            "Where do otters sleep?",
            HITS,
            llm=llm,
            model="standin-llm",
            user_context={"name": "Ada"},
            max_tokens=123,
        )
    assert answer == Answer("Sea otters sleep floating on their backs [1].", "llm", (1,))
    body = server.requests[before].body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("standin-llm", 0, 123)
    assert body["messages"] == build_messages(
        "Where do otters sleep?", HITS, user_context={"name": "Ada"}
    )


async def test_an_llm_error_status_falls_back_to_extractive(server: OpenAIStandIn) -> None:
    server.queue(Reply(status=503))
    async with client_for(server.base_url) as llm:
        answer = await compose_answer("otters sleep", HITS, llm=llm, model=None)
    assert (answer.mode, answer.text) == (
        "extractive",
        extractive_answer("otters sleep", HITS).text,
    )
    assert answer.error is not None
    assert answer.error.startswith("LLM unavailable: ")


async def test_an_empty_llm_answer_falls_back_to_extractive(server: OpenAIStandIn) -> None:
    server.queue(Reply("   "))
    async with client_for(server.base_url) as llm:
        answer = await compose_answer("otters sleep", HITS, llm=llm, model=None)
    assert answer.mode == "extractive"
    assert answer.error == "LLM answered nothing"


async def test_a_malformed_llm_answer_falls_back_to_extractive(server: OpenAIStandIn) -> None:
    server.queue(Reply(no_choices=True))
    async with client_for(server.base_url) as llm:
        answer = await compose_answer("otters sleep", HITS, llm=llm, model=None)
    assert answer.mode == "extractive"
    assert answer.error is not None
    assert answer.error.startswith("LLM unavailable: InvalidResponse: ")


async def test_an_llm_that_answers_too_late_falls_back(server: OpenAIStandIn) -> None:
    server.queue(Reply("late [1]", delay=30.0))
    async with client_for(server.base_url) as llm:
        answer = await compose_answer("otters", HITS, llm=llm, model=None, timeout=0.2)
    assert answer.mode == "extractive"
    assert answer.error == "LLM unavailable: DeadlineExceeded: [llm] no answer within 0.2 s"


async def test_a_stopped_host_falls_back_to_extractive() -> None:
    host = LLMHostStandIn("down").start()
    host.die()
    async with client_for(host.url) as llm:
        answer = await compose_answer("otters sleep", HITS, llm=llm, model=None)
    assert answer.mode == "extractive"
    assert answer.used == (1, 2)
    assert answer.error is not None
    assert answer.error.startswith("LLM unavailable: ConnectError: ")


async def test_without_an_llm_the_answer_is_extractive() -> None:
    answer = await compose_answer("otters sleep", HITS, llm=None, model="m")
    assert answer == extractive_answer("otters sleep", HITS)
    assert answer.error is None


async def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        await compose_answer("otters", HITS, llm=None, model=None, timeout=0)
    with pytest.raises(ValueError, match="max_tokens"):
        await compose_answer("otters", HITS, llm=None, model=None, max_tokens=0)


async def test_without_hits_the_llm_is_not_asked(server: OpenAIStandIn) -> None:
    before = len(server.requests)
    async with client_for(server.base_url) as llm:
        answer = await compose_answer("otters", [], llm=llm, model=None)
    assert answer == Answer(NO_MATCH, "extractive", ())
    assert len(server.requests) == before
