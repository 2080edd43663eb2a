"""The questions service in-process: REST through ASGI, gRPC on a real loopback server, one
SQLite file (and PostgreSQL for the change feed when its binaries are installed).

Both protocols share one :class:`QuestionStore`, as ``servicegrid serve questions`` runs them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from servicegrid.apps.questions import (
    QuestionCreate,
    QuestionServicer,
    QuestionStore,
    QuestionUpdate,
    create_app,
)
from servicegrid.apps.questions.search import (
    Document,
    like_pattern,
    query_terms,
    rank,
    tokenise,
)
from servicegrid.proto import common_pb2, question_service_pb2, question_service_pb2_grpc
from servicegrid.runtime import ServiceRegistration, create_server
from servicegrid.settings import Settings, load_settings
from servicegrid.testing import FakeClock

_pb = question_service_pb2
GENERATED_ID = re.compile(r"q-[0-9a-f]{12}")


def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/data/questions.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(question_service_database_url=db_url(tmp_path), sample_data=False)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[QuestionStore]:
    async with QuestionStore(db_url(tmp_path), clock=clock) as opened:
        yield opened


@pytest.fixture
async def client(settings: Settings, store: QuestionStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings, store=store))
    async with httpx.AsyncClient(transport=transport, base_url="http://questions") as http:
        yield http


@pytest.fixture
async def stub(
    store: QuestionStore,
) -> AsyncIterator[question_service_pb2_grpc.QuestionServiceAsyncStub]:
    registration = ServiceRegistration.from_descriptor(
        _pb.DESCRIPTOR.services_by_name["QuestionService"],
        question_service_pb2_grpc.add_QuestionServiceServicer_to_server,
        QuestionServicer(store),
    )
    running = await create_server(
        "127.0.0.1:0", services=[registration], registry=CollectorRegistry()
    )
    await running.server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield question_service_pb2_grpc.QuestionServiceStub(channel)
    finally:
        await channel.close()
        await running.server.stop(None)


def problem_fields(answer: httpx.Response) -> list[str]:
    """The fields FastAPI's 422 names (``["body", "tags", 2]`` -> ``"tags.2"``)."""
    assert answer.status_code == 422, answer.text
    return [".".join(str(part) for part in item["loc"][1:]) for item in answer.json()["detail"]]


async def ask(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await client.post("/questions", json={"user_id": "user-1", **body})
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


# ---- PostgreSQL ----------------------------------------------------------------------------
# First in the module: the session's PostgreSQL fixture forks a server, which is safest before
# this process has gRPC threads running.


async def test_change_feed_on_postgresql_with_two_writers(postgres_url: str) -> None:
    async with QuestionStore(postgres_url) as first, QuestionStore(postgres_url) as second:
        assert first.backend == "postgresql"

        async def write(store: QuestionStore, n: int) -> None:
            question = await store.create(
                QuestionCreate(id=f"q-{n}", user_id="u", title=f"Über question {n}")
            )
            await store.update(question.id, QuestionUpdate(tags=[f"t{n}"]))

        await asyncio.gather(*(write(first if n % 2 else second, n) for n in range(20)))
        await first.delete("q-0")
        changes, last, has_more = await second.changes(limit=1000)
        seqs = [c.seq for c in changes]
        assert len(changes) == 41
        assert not has_more
        assert last == seqs[-1]
        assert seqs == sorted(set(seqs))
        for n in range(20):
            kinds = [c.kind for c in changes if c.question.id == f"q-{n}"]
            assert kinds == (
                ["created", "updated", "deleted"] if n == 0 else ["created", "updated"]
            )
        hits, total = await first.search("ÜBER", limit=5)
        assert total == 19
        assert len(hits) == 5
        assert (await first.list(tag="t7"))[1] == 1
    async with QuestionStore(postgres_url) as reopened:
        assert (await reopened.changes(limit=1000))[0] == changes


# ---- search scoring (pure) -----------------------------------------------------------------


def test_tokenise_is_unicode_aware_and_lower_cases() -> None:
    assert tokenise("Ünïcode STRASSE, naïve-Bayes; snake_case 3.14") == [
        "ünïcode",
        "strasse",
        "naïve",
        "bayes",
        "snake_case",
        "3",
        "14",
    ]


def test_query_terms_drop_stop_words_but_never_every_term() -> None:
    assert query_terms("What is the Vector database, the database?") == ["vector", "database"]
    assert query_terms("how is it") == ["how", "is", "it"]
    assert query_terms("?!") == []


def test_like_pattern_escapes_wildcards() -> None:
    assert like_pattern("100%_sure\\") == "%100\\%\\_sure\\\\%"


def test_rank_puts_title_over_tags_over_body_and_keeps_creation_order_for_ties() -> None:
    documents = [
        Document("Cooking pasta", "Use plenty of python-free water.", ()),  # body only
        Document("Unrelated", "nothing here", ()),
        Document("Learning Python fast", "", ()),  # title
        Document("Snakes", "", ("python",)),  # tag
        Document("Other snakes", "", ("python",)),  # same as the previous one
    ]
    hits = rank(documents, ["python"], total_documents=10)
    assert [index for index, _ in hits] == [2, 3, 4, 0]
    assert hits[1][1] == hits[2][1]
    assert all(score > 0 for _, score in hits)


def test_rank_prefers_questions_matching_more_terms_and_counts_prefixes() -> None:
    documents = [
        Document("Vector search", "", ()),
        Document("Vector databases at scale", "", ()),  # "database" is a prefix of a word
        Document("Relational database design", "", ()),
    ]
    hits = rank(documents, ["vector", "database"], total_documents=3)
    # both match one term once in a short title: a tie, kept in creation order
    assert [index for index, _ in hits] == [1, 0, 2]
    assert rank(documents, ["graph"], total_documents=3) == []


# ---- REST ----------------------------------------------------------------------------------


async def test_rest_create_read_update_delete(client: httpx.AsyncClient, clock: FakeClock) -> None:
    created = await ask(
        client,
        title="  How do I sort a list? \n",
        body="In Python.\n\tThanks",
        tags=[" Python ", "SORTING", "python"],
    )
    assert GENERATED_ID.fullmatch(created["id"])
    assert created["title"] == "How do I sort a list?"
    assert created["body"] == "In Python.\n\tThanks"
    assert created["tags"] == ["python", "sorting"]
    assert created["created_at"] == created["updated_at"] == "2025-11-15T10:30:45Z"
    assert (await client.get(f"/questions/{created['id']}")).json() == created

    clock.advance(60)
    patched = await client.patch(f"/questions/{created['id']}", json={"tags": ["lists"]})
    assert patched.status_code == 200
    assert patched.json() == created | {"tags": ["lists"], "updated_at": "2025-11-15T10:31:45Z"}
    unchanged = await client.patch(f"/questions/{created['id']}", json={})
    assert unchanged.json() == patched.json()

    deleted = await client.delete(f"/questions/{created['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": created["id"], "deleted": True}
    for answer in (
        await client.get(f"/questions/{created['id']}"),
        await client.patch(f"/questions/{created['id']}", json={"title": "x"}),
        await client.delete(f"/questions/{created['id']}"),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"] == "ResourceNotFoundError"
        assert created["id"] in answer.json()["detail"]


async def test_rest_duplicate_id_is_409(client: httpx.AsyncClient) -> None:
    await ask(client, id="q-dup", title="first")
    again = await client.post("/questions", json={"id": "q-dup", "user_id": "u", "title": "2nd"})
    assert again.status_code == 409
    assert again.json()["error"] == "ConflictError"
    assert again.json()["detail"].startswith("id: ")
    assert (await client.get("/questions/q-dup")).json()["title"] == "first"


async def test_rest_list_filters_and_pages(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await ask(
            client,
            id=f"q-{n}",
            user_id="ann" if n % 2 == 0 else "bob",
            title=f"question {n}",
            tags=["even"] if n % 2 == 0 else ["odd"],
        )
    listing = (await client.get("/questions", params={"per_page": 2, "page": 2})).json()
    assert [q["id"] for q in listing["items"]] == ["q-2", "q-3"]
    assert listing | {"items": []} == {"items": [], "total": 5, "page": 2, "per_page": 2}
    by_ann = (await client.get("/questions", params={"user_id": "ann"})).json()
    assert [q["id"] for q in by_ann["items"]] == ["q-0", "q-2", "q-4"]
    odd = (await client.get("/questions", params={"tag": " ODD "})).json()
    assert [q["id"] for q in odd["items"]] == ["q-1", "q-3"]
    both = (await client.get("/questions", params={"tag": "odd", "user_id": "ann"})).json()
    assert both["items"] == []
    assert both["total"] == 0
    beyond = (await client.get("/questions", params={"page": 9})).json()
    assert beyond["items"] == []
    assert beyond["total"] == 5


async def test_rest_search_ranks_and_filters(client: httpx.AsyncClient) -> None:
    await ask(client, id="q-body", title="Cooking", body="I once met a python in the kitchen")
    await ask(client, id="q-title", title="Python decorators explained", user_id="user-2")
    await ask(client, id="q-none", title="Rust lifetimes", body="borrow checker")
    await ask(client, id="q-tag", title="Scripting", tags=["Python"])
    found = await client.get("/questions/search", params={"q": "  PYTHON  "})
    assert found.status_code == 200
    answer = found.json()
    assert answer["query"] == "PYTHON"
    assert [hit["question"]["id"] for hit in answer["items"]] == ["q-title", "q-tag", "q-body"]
    assert answer["total"] == 3
    scores = [hit["score"] for hit in answer["items"]]
    assert scores == sorted(scores, reverse=True)

    limited = (await client.get("/questions/search", params={"q": "python", "limit": 1})).json()
    assert [hit["question"]["id"] for hit in limited["items"]] == ["q-title"]
    assert limited["total"] == 3
    mine = (
        await client.get("/questions/search", params={"q": "python", "user_id": "user-1"})
    ).json()
    assert [hit["question"]["id"] for hit in mine["items"]] == ["q-tag", "q-body"]
    nothing = (await client.get("/questions/search", params={"q": "haskell"})).json()
    assert nothing == {"query": "haskell", "items": [], "total": 0}
    wildcard = (await client.get("/questions/search", params={"q": "%_"})).json()
    assert wildcard["total"] == 0


async def test_rest_change_feed(client: httpx.AsyncClient) -> None:
    first = await ask(client, id="q-a", title="first")
    await ask(client, id="q-b", title="second")
    await client.patch("/questions/q-a", json={"title": "first, edited"})
    await client.delete("/questions/q-b")
    feed = (await client.get("/questions/changes")).json()
    assert [(c["kind"], c["question"]["id"]) for c in feed["changes"]] == [
        ("created", "q-a"),
        ("created", "q-b"),
        ("updated", "q-a"),
        ("deleted", "q-b"),
    ]
    seqs = [c["seq"] for c in feed["changes"]]
    assert seqs == sorted(set(seqs))
    assert seqs[0] >= 1
    assert feed["changes"][0]["question"] == first
    assert feed["changes"][2]["question"]["title"] == "first, edited"
    assert feed["changes"][3]["question"]["title"] == "second"  # as it was
    assert feed["next_after"] == seqs[-1]
    assert feed["has_more"] is False

    page = (await client.get("/questions/changes", params={"limit": 3})).json()
    assert [c["seq"] for c in page["changes"]] == seqs[:3]
    assert page["next_after"] == seqs[2]
    assert page["has_more"] is True
    rest = (await client.get("/questions/changes", params={"after": page["next_after"]})).json()
    assert [c["seq"] for c in rest["changes"]] == seqs[3:]
    assert rest["has_more"] is False
    empty = (await client.get("/questions/changes", params={"after": seqs[-1]})).json()
    assert empty == {"changes": [], "next_after": seqs[-1], "has_more": False}


async def test_feed_and_data_survive_reopening(tmp_path: Path, clock: FakeClock) -> None:
    async with QuestionStore(db_url(tmp_path), clock=clock) as store:
        kept = await store.create(QuestionCreate(user_id="u", title="kept", tags=["a"]))
        gone = await store.create(QuestionCreate(user_id="u", title="gone"))
        await store.delete(gone.id)
        before, last, _ = await store.changes()
    async with QuestionStore(db_url(tmp_path), clock=clock) as store:
        assert await store.get(kept.id) == kept
        assert await store.list(tag="a") == ([kept], 1)
        assert (await store.changes())[0] == before
        again = await store.update(kept.id, QuestionUpdate(title="kept, edited"))
        after, _, _ = await store.changes(after=last)
        assert [(c.kind, c.question) for c in after] == [("updated", again)]
        assert after[0].seq > last  # seqs are never reused, even after the newest row went


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"title": "tab\tin title"}, "title"),
        ({"title": "ok", "body": "nul\x00"}, "body"),
        ({"title": "ok", "body": "bell\x07"}, "body"),
        ({"title": "ok", "body": "x" * 20_001}, "body"),
        ({"title": "ok", "tags": ["t"] * 21}, "tags"),
        ({"title": "ok", "tags": ["fine", "x" * 51]}, "tags.1"),
        ({"title": "ok", "tags": ["fine", "  "]}, "tags.1"),
        ({"title": "ok", "id": "search"}, "id"),
        ({"title": "ok", "id": "changes"}, "id"),
        ({"title": "ok", "id": "-starts-with-dash"}, "id"),
        ({"title": "ok", "user_id": "no spaces"}, "user_id"),
        ({"title": "ok", "colour": "blue"}, "colour"),
    ],
)
async def test_rest_bad_question_is_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/questions", json={"user_id": "user-1", **body})
    assert problem_fields(answer) == [field]


async def test_rest_bad_update_and_parameters_are_422(client: httpx.AsyncClient) -> None:
    await ask(client, id="q-1", title="t")
    assert problem_fields(await client.patch("/questions/q-1", json={"title": None})) == ["title"]
    assert problem_fields(await client.patch("/questions/q-1", json={"tags": None})) == ["tags"]
    assert problem_fields(await client.patch("/questions/q-1", json={"user_id": "x"})) == [
        "user_id"
    ]
    assert problem_fields(await client.get("/questions/bad id")) == ["question_id"]
    cases: list[tuple[str, dict[str, str | int], str]] = [
        ("/questions", {"per_page": 101}, "per_page"),
        ("/questions", {"per_page": 0}, "per_page"),
        ("/questions", {"page": 0}, "page"),
        ("/questions/search", {}, "q"),
        ("/questions/search", {"q": ""}, "q"),
        ("/questions/search", {"q": "?!"}, "q"),
        ("/questions/search", {"q": "x" * 501}, "q"),
        ("/questions/search", {"q": "ok", "limit": 0}, "limit"),
        ("/questions/search", {"q": "ok", "limit": 101}, "limit"),
        ("/questions/changes", {"after": -1}, "after"),
        ("/questions/changes", {"limit": 1001}, "limit"),
    ]
    for path, params, field in cases:
        assert problem_fields(await client.get(path, params=params)) == [field], (path, params)
    assert (await client.get("/questions/q-1")).json()["title"] == "t"


def test_app_opens_its_own_store_with_sample_data(tmp_path: Path) -> None:
    settings = load_settings(question_service_database_url=db_url(tmp_path), sample_data=True)
    for _ in range(2):  # the second start finds the questions there and seeds nothing
        with TestClient(create_app(settings)) as http:
            assert http.get("/health").json() == {
                "status": "healthy",
                "service": "questions",
                "database": "sqlite",
            }
            listing = http.get("/questions").json()
            assert [q["id"] for q in listing["items"]] == [f"q-00{n}" for n in range(1, 7)]
            by_alice = http.get("/questions", params={"user_id": "user-123"}).json()
            assert by_alice["total"] >= 3
            feed = http.get("/questions/changes").json()
            assert [c["kind"] for c in feed["changes"]] == ["created"] * 6
            hits = http.get("/questions/search", params={"q": "vector database"}).json()
            assert hits["items"][0]["question"]["id"] == "q-003"


# ---- gRPC ----------------------------------------------------------------------------------


async def test_grpc_create_read_update_delete(
    stub: question_service_pb2_grpc.QuestionServiceAsyncStub, store: QuestionStore
) -> None:
    created = await stub.CreateQuestion(
        _pb.CreateQuestionRequest(user_id="u", title=" gRPC? ", tags=["Go", "go"])
    )
    assert GENERATED_ID.fullmatch(created.id)
    assert (created.title, list(created.tags)) == ("gRPC?", ["go"])
    assert await stub.GetQuestion(_pb.GetQuestionRequest(id=created.id)) == created
    assert (await store.get(created.id)).title == "gRPC?"  # the same store as REST

    body_only = await stub.UpdateQuestion(_pb.UpdateQuestionRequest(id=created.id, body="more"))
    assert (body_only.title, body_only.body, list(body_only.tags)) == ("gRPC?", "more", ["go"])
    cleared = await stub.UpdateQuestion(
        _pb.UpdateQuestionRequest(id=created.id, tags=common_pb2.StringList(values=[]))
    )
    assert list(cleared.tags) == []

    deleted = await stub.DeleteQuestion(_pb.DeleteQuestionRequest(id=created.id))
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetQuestion(_pb.GetQuestionRequest(id=created.id))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert created.id in (missing.value.details() or "")


async def test_grpc_list_search_and_changes(
    stub: question_service_pb2_grpc.QuestionServiceAsyncStub,
) -> None:
    for n in range(3):
        await stub.CreateQuestion(
            _pb.CreateQuestionRequest(
                id=f"q-{n}", user_id=f"u{n % 2}", title=f"Kafka topic {n}", tags=[f"t{n}"]
            )
        )
    listing = await stub.ListQuestions(_pb.ListQuestionsRequest())
    assert ([q.id for q in listing.items], listing.total) == (["q-0", "q-1", "q-2"], 3)
    assert (listing.page, listing.per_page) == (1, 20)
    paged = await stub.ListQuestions(_pb.ListQuestionsRequest(user_id="u0", page=2, per_page=1))
    assert ([q.id for q in paged.items], paged.total) == (["q-2"], 2)
    tagged = await stub.ListQuestions(_pb.ListQuestionsRequest(tag="T1"))
    assert [q.id for q in tagged.items] == ["q-1"]

    found = await stub.SearchQuestions(_pb.SearchQuestionsRequest(q="kafka", user_id="u1"))
    assert (found.query, found.total) == ("kafka", 1)
    assert found.items[0].question.id == "q-1"
    assert found.items[0].score > 0

    feed = await stub.ListQuestionChanges(_pb.ListQuestionChangesRequest(limit=2))
    assert [c.kind for c in feed.changes] == ["created", "created"]
    assert feed.has_more
    assert feed.next_after == feed.changes[-1].seq
    rest = await stub.ListQuestionChanges(_pb.ListQuestionChangesRequest(after=feed.next_after))
    assert [c.question.id for c in rest.changes] == ["q-2"]
    assert not rest.has_more


@pytest.mark.parametrize(
    ("call", "request_message", "field"),
    [
        ("CreateQuestion", _pb.CreateQuestionRequest(user_id="u", title=" "), "title"),
        (
            "CreateQuestion",
            _pb.CreateQuestionRequest(user_id="u", title="t", tags=["ok", ""]),
            "tags[1]",
        ),
        ("CreateQuestion", _pb.CreateQuestionRequest(id="search", user_id="u", title="t"), "id"),
        ("CreateQuestion", _pb.CreateQuestionRequest(title="t"), "user_id"),
        ("GetQuestion", _pb.GetQuestionRequest(), "id"),
        ("UpdateQuestion", _pb.UpdateQuestionRequest(id="q-1", title=""), "title"),
        ("DeleteQuestion", _pb.DeleteQuestionRequest(id="bad id"), "id"),
        ("ListQuestions", _pb.ListQuestionsRequest(per_page=101), "per_page"),
        ("ListQuestions", _pb.ListQuestionsRequest(page=-1), "page"),
        ("SearchQuestions", _pb.SearchQuestionsRequest(), "q"),
        ("SearchQuestions", _pb.SearchQuestionsRequest(q="..."), "q"),
        ("SearchQuestions", _pb.SearchQuestionsRequest(q="ok", limit=101), "limit"),
        ("ListQuestionChanges", _pb.ListQuestionChangesRequest(after=-5), "after"),
        ("ListQuestionChanges", _pb.ListQuestionChangesRequest(limit=1001), "limit"),
    ],
)
async def test_grpc_bad_input_is_invalid_argument_naming_the_field(
    stub: question_service_pb2_grpc.QuestionServiceAsyncStub,
    call: str,
    request_message: Any,
    field: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await getattr(stub, call)(request_message)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(f"{field}: ")


async def test_grpc_duplicate_id_is_already_exists(
    stub: question_service_pb2_grpc.QuestionServiceAsyncStub,
) -> None:
    request = _pb.CreateQuestionRequest(id="q-x", user_id="u", title="t")
    await stub.CreateQuestion(request)
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await stub.CreateQuestion(request)
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    for missing in (
        stub.UpdateQuestion(_pb.UpdateQuestionRequest(id="q-nope", title="t")),
        stub.DeleteQuestion(_pb.DeleteQuestionRequest(id="q-nope")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await missing
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
