"""The retrieval core: tokens, chunks, excerpts, BM25 weights, fusion, and the Qdrant index."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servicegrid.errors import ClientStateError
from servicegrid.retrieval.chunks import Chunk, SparseVector
from servicegrid.retrieval.fusion import Fusion, reciprocal_rank_fusion, relative_score_fusion
from servicegrid.retrieval.index import HybridIndex, Scope
from servicegrid.retrieval.sparse import Bm25Encoder, term_id
from servicegrid.retrieval.text import chunk_text, excerpt, tokenise
from servicegrid.settings import load_settings

# ---- text -----------------------------------------------------------------------------------


def test_tokenise_lowercases_keeps_digits_and_drops_stop_words() -> None:
    assert tokenise("The GPU has 80 GB, and the café's fan!") == [
        "gpu",
        "80",
        "gb",
        "café",
        "s",
        "fan",
    ]


def test_tokenise_keeps_stop_words_when_nothing_else_is_left() -> None:
    assert tokenise("To be or not to be") == ["to", "be", "or", "not", "to", "be"]
    assert tokenise("  ...  ") == []


def _sentences(count: int, words: int = 6) -> str:
    return " ".join(f"S{i} " + " ".join(["w"] * (words - 2)) + " end." for i in range(count))


def test_chunk_text_packs_whole_sentences_with_overlap() -> None:
    chunks = chunk_text(_sentences(40), max_words=30, overlap=10)

    assert len(chunks) > 1
    for chunk in chunks:
        assert len(chunk.split()) <= 30
        assert chunk.endswith("end.")  # whole sentences only
    for before, after in itertools.pairwise(chunks):
        # overlap 10 carries one whole 6-word sentence (two would be 12)
        assert after.split()[:6] == before.split()[-6:]
        assert after.split()[:7] != before.split()[-7:]
    text = " ".join(chunks)
    assert all(f"S{i} " in text for i in range(40))


def test_chunk_text_splits_an_overlong_sentence_by_words() -> None:
    words = [f"w{i}" for i in range(23)]
    chunks = chunk_text(" ".join(words), max_words=8, overlap=3)

    assert all(len(chunk.split()) <= 8 for chunk in chunks)
    for before, after in itertools.pairwise(chunks):
        assert after.split()[:3] == before.split()[-3:]
    assert chunks[-1].split()[-1] == "w22"
    seen = [w for chunk in chunks for w in chunk.split()]
    assert set(seen) == set(words)


def test_chunk_text_keeps_paragraphs_and_handles_blank_input() -> None:
    assert chunk_text("First para.\n\nSecond one.\n  \nThird.") == [
        "First para.\n\nSecond one.\n\nThird."
    ]
    assert chunk_text("   \n\n  ") == []
    assert chunk_text("short", overlap=0) == ["short"]
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("x", max_words=10, overlap=10)


_DOC = (
    "Qdrant is a vector database. It stores points with payloads. "
    "BM25 ranks passages by term frequency and inverse document frequency. "
    "Reciprocal rank fusion merges rankings."
)


def test_excerpt_picks_the_sentences_sharing_most_query_tokens() -> None:
    assert excerpt(_DOC, "bm25 passages frequency", max_chars=80) == (
        "BM25 ranks passages by term frequency and inverse document frequency."
    )
    assert excerpt(_DOC, "bm25 passages", max_chars=300).startswith("BM25 ranks")
    assert excerpt(_DOC, "nothing shared", max_chars=60) == (
        "Qdrant is a vector database. It stores points with payloads."
    )


def test_excerpt_trims_at_a_word_boundary() -> None:
    cut = excerpt(_DOC, "bm25", max_chars=40)
    assert cut == "BM25 ranks passages by term frequency…"
    assert len(cut) <= 40
    assert excerpt("", "query") == ""


# ---- sparse ---------------------------------------------------------------------------------


def test_term_id_is_stable_unsigned_32_bit() -> None:
    assert term_id("gpu") == term_id("gpu") == 1_232_338_519  # pinned: stored vectors depend on it
    assert all(0 <= term_id(token) < 2**32 for token in ("a", "ünïcode", "42"))


def test_bm25_document_weights_follow_the_formula() -> None:
    encoder = Bm25Encoder(k1=1.2, b=0.75, average_length=4.0)
    vector = encoder.document("gpu gpu memory")  # len 3: tf(gpu)=2, tf(memory)=1

    norm = 1.2 * (1 - 0.75 + 0.75 * 3 / 4.0)  # 0.975
    expected = {term_id("gpu"): 2 * 2.2 / (2 + norm), term_id("memory"): 1 * 2.2 / (1 + norm)}
    assert dict(zip(vector.indices, vector.values, strict=True)) == pytest.approx(expected)
    assert vector.indices == sorted(vector.indices)
    assert encoder.document("") == SparseVector([], [])


def test_bm25_query_weighs_each_distinct_term_once() -> None:
    vector = Bm25Encoder().query("GPU gpu memory")
    assert sorted(vector.indices) == sorted([term_id("gpu"), term_id("memory")])
    assert vector.values == [1.0, 1.0]


def test_colliding_terms_add_their_weights() -> None:
    # a real blake2b-32 collision, found by brute force
    assert term_id("w52890") == term_id("w55286")
    encoder = Bm25Encoder()

    assert encoder.query("w52890 w55286") == SparseVector([term_id("w52890")], [2.0])
    both = encoder.document("w52890 w55286")
    single = encoder.document("w52890 other")
    assert both.indices.count(term_id("w52890")) == 1
    assert dict(zip(both.indices, both.values, strict=True))[term_id("w52890")] == pytest.approx(
        2 * dict(zip(single.indices, single.values, strict=True))[term_id("w52890")]
    )


def test_bm25_encoder_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="b must"):
        Bm25Encoder(b=1.5)
    with pytest.raises(ValueError, match="average_length"):
        Bm25Encoder(average_length=0)


# ---- fusion ---------------------------------------------------------------------------------


def test_rrf_hand_example() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]], k=60)

    assert [doc for doc, _ in fused] == ["b", "a", "d", "c"]
    scores = dict(fused)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["d"] == pytest.approx(1 / 62)
    assert scores["c"] == pytest.approx(1 / 63)


def test_rrf_ties_keep_first_seen_order_and_weights_scale() -> None:
    assert [d for d, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]
    assert [d for d, _ in reciprocal_rank_fusion([["y"], ["x"]])] == ["y", "x"]
    weighted = reciprocal_rank_fusion([["x"], ["y"]], k=0, weights=[1.0, 3.0])
    assert weighted == [("y", 3.0), ("x", 1.0)]
    assert reciprocal_rank_fusion([["a", "a"]], k=0) == [("a", 1.0)]
    assert reciprocal_rank_fusion([]) == []
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])


def test_relative_score_fusion_hand_example() -> None:
    bm25 = [("a", 12.0), ("b", 8.0), ("c", 4.0)]  # normalised: a 1, b 0.5, c 0
    dense = [("b", 0.9), ("d", 0.7), ("a", 0.5)]  # normalised: b 1, d 0.5, a 0

    fused = relative_score_fusion([bm25, dense], weights=[1.0, 3.0])

    assert fused == [
        ("b", pytest.approx(0.5 + 3.0)),
        ("d", pytest.approx(1.5)),
        ("a", pytest.approx(1.0)),
        ("c", pytest.approx(0.0)),
    ]


def test_relative_score_fusion_edges() -> None:
    # equal scores all normalise to 1; a repeated id counts at its best score
    assert relative_score_fusion([[("x", 2.0), ("y", 2.0)]]) == [("x", 1.0), ("y", 1.0)]
    assert relative_score_fusion([[("x", 1.0), ("y", 3.0), ("x", 5.0)]])[0] == ("x", 1.0)
    assert relative_score_fusion([[], [("z", 0.1)]]) == [("z", 1.0)]
    with pytest.raises(ValueError, match="weights"):
        relative_score_fusion([[("a", 1.0)]], weights=[1.0, 2.0])


def test_fusion_policy_chooses_the_method_and_weights_dense() -> None:
    bm25, dense = [("a", 9.0), ("b", 1.0)], [("b", 0.8), ("a", 0.2)]

    assert [d for d, _ in Fusion().fuse(bm25, dense)] == ["a", "b"]  # a tie: first seen
    assert [d for d, _ in Fusion(dense_weight=2.0).fuse(bm25, dense)] == ["b", "a"]
    relative = Fusion("relative", dense_weight=4.0).fuse(bm25, dense)
    assert relative == [("b", pytest.approx(4.0)), ("a", pytest.approx(1.0))]
    for bad in ({"method": "mean"}, {"dense_weight": 0.0}, {"k": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Fusion(**bad)  # type: ignore[arg-type]


# ---- index ----------------------------------------------------------------------------------

_ENCODER = Bm25Encoder()
_EVERYONE = Scope(frozenset({"question", "document"}), user_id="alice")


def _question(n: int, text: str, user: str | None = "alice", ref: str = "q-1") -> Chunk:
    return Chunk(f"question:{ref}:{n}", "question", ref, text, title="Q", user_id=user)


def _document(n: int, text: str, user: str | None = None, ref: str = "guide.pdf") -> Chunk:
    return Chunk(f"document:{ref}:{n}", "document", ref, text, page=n + 1, user_id=user)


async def _add(index: HybridIndex, chunks: list[Chunk], dense: list[list[float]] | None) -> None:
    sparse = [_ENCODER.document(chunk.text) for chunk in chunks]
    await index.upsert(chunks, sparse=sparse, dense=dense)


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[HybridIndex]:
    async with HybridIndex(path=str(tmp_path / "qdrant")) as opened:
        await opened.ensure_collection(3)
        yield opened


async def test_upsert_and_search_both_kinds(index: HybridIndex) -> None:
    chunks = [
        Chunk(
            "question:q-1:0",
            "question",
            "q-1",
            "How do I reset the GPU memory?",
            title="Reset",
            user_id="alice",
            extra={"tags": ["gpu"]},
        ),
        _document(0, "The embedding service batches requests."),
    ]
    await _add(index, chunks, dense=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

    dense_hits = await index.search_dense([0.9, 0.1, 0.0], where=_EVERYONE, limit=5)
    assert [hit.chunk for hit in dense_hits] == chunks
    assert dense_hits[0].score > dense_hits[1].score
    sparse_hits = await index.search_sparse(_ENCODER.query("gpu reset"), where=_EVERYONE, limit=5)
    assert [hit.chunk for hit in sparse_hits] == [chunks[0]]
    assert await index.count() == 2
    assert await index.count(source="document") == 1
    assert await index.count(user_id="alice") == 1
    assert index.dimension == 3


async def test_scope_filters_by_user_and_source(index: HybridIndex) -> None:
    chunks = [
        _question(0, "gpu question of alice", user="alice", ref="q-a"),
        _question(0, "gpu question of bob", user="bob", ref="q-b"),
        _document(0, "gpu shared manual", user=None, ref="shared.pdf"),
        _document(0, "gpu private notes of bob", user="bob", ref="bob.pdf"),
    ]
    await _add(index, chunks, dense=[[1.0, 0.0, 0.0]] * 4)
    query = _ENCODER.query("gpu")

    async def refs(scope: Scope) -> set[str]:
        sparse = {h.chunk.ref for h in await index.search_sparse(query, where=scope, limit=10)}
        dense = {h.chunk.ref for h in await index.search_dense([1, 0, 0], where=scope, limit=10)}
        assert sparse == dense
        return sparse

    assert await refs(Scope(frozenset({"question", "document"}), "alice")) == {"q-a", "shared.pdf"}
    assert await refs(Scope(frozenset({"question", "document"}), "bob")) == {
        "q-b",
        "shared.pdf",
        "bob.pdf",
    }
    assert await refs(Scope(frozenset({"document"}), "bob")) == {"shared.pdf", "bob.pdf"}
    assert await refs(Scope(frozenset({"question"}), "bob")) == {"q-b"}
    assert await refs(Scope(frozenset({"question", "document"}), None)) == {"shared.pdf"}
    assert await refs(Scope(frozenset(), "bob")) == set()


async def test_delete_keeps_the_named_chunks(index: HybridIndex) -> None:
    await _add(
        index,
        [_question(n, f"part {n}") for n in range(3)] + [_question(0, "other", ref="q-2")],
        dense=None,
    )

    await index.delete(source="question", ref="q-1", keep={"question:q-1:0"})
    assert await index.count(source="question") == 2
    hits = await index.search_sparse(_ENCODER.query("part other"), where=_EVERYONE, limit=10)
    assert {hit.chunk.id for hit in hits} == {"question:q-1:0", "question:q-2:0"}

    await index.delete(source="question", ref="q-1")
    assert await index.count() == 1


async def test_sparse_only_points_are_found_by_sparse_search_only(index: HybridIndex) -> None:
    await _add(index, [_document(0, "embedding outage fallback")], dense=None)
    await _add(index, [_document(1, "dense and sparse")], dense=[[1.0, 0.0, 0.0]])

    dense_hits = await index.search_dense([1.0, 0.0, 0.0], where=_EVERYONE, limit=10)
    assert [hit.chunk.id for hit in dense_hits] == ["document:guide.pdf:1"]
    sparse_hits = await index.search_sparse(
        _ENCODER.query("outage fallback"), where=_EVERYONE, limit=10
    )
    assert [hit.chunk.id for hit in sparse_hits] == ["document:guide.pdf:0"]


async def test_upserting_the_same_chunk_id_replaces_it(index: HybridIndex) -> None:
    await _add(index, [_question(0, "old wording")], dense=None)
    await _add(index, [_question(0, "new wording")], dense=None)

    assert await index.count() == 1
    hits = await index.search_sparse(_ENCODER.query("wording"), where=_EVERYONE, limit=10)
    assert [hit.chunk.text for hit in hits] == ["new wording"]


async def test_bm25_idf_ranks_a_rare_term_above_a_common_one(index: HybridIndex) -> None:
    common = [_document(n, f"the service restarts when memory is low, case {n}") for n in range(8)]
    # longer than the others, so on term frequency alone it would rank below them
    rare = _document(8, "the kernel panics during a firmware update on old nodes with many disks")
    await _add(index, [*common, rare], dense=None)

    hits = await index.search_sparse(_ENCODER.query("memory firmware"), where=_EVERYONE, limit=10)
    assert hits[0].chunk == rare
    assert len(hits) == 9
    # only the IDF tells them apart: a lone query term scores its TF weight times its IDF
    assert hits[0].score > 2 * hits[1].score


async def test_state_round_trip_and_reopen_persists(tmp_path: Path) -> None:
    path = str(tmp_path / "qdrant")
    async with HybridIndex(path=path, collection="idx") as index:
        assert await index.get_state("cursor") is None
        await index.ensure_collection(3)
        await _add(index, [_question(0, "persisted gpu question")], dense=[[0.0, 0.0, 1.0]])
        await index.set_state("cursor", {"seq": 1})
        await index.set_state("cursor", {"seq": 2, "users": ["alice"]})
        assert await index.get_state("cursor") == {"seq": 2, "users": ["alice"]}
        assert await index.count() == 1  # state lives in its own collection

    async with HybridIndex(path=path, collection="idx") as reopened:
        assert reopened.dimension == 3
        assert await reopened.get_state("cursor") == {"seq": 2, "users": ["alice"]}
        assert await reopened.get_state("other") is None
        hits = await reopened.search_sparse(_ENCODER.query("gpu"), where=_EVERYONE, limit=5)
        assert [hit.chunk.text for hit in hits] == ["persisted gpu question"]
        with pytest.raises(ValueError, match=r"size 3, not 4"):
            await reopened.ensure_collection(4)
        await reopened.ensure_collection(3)


async def test_empty_and_missing_collections_find_nothing(tmp_path: Path) -> None:
    async with HybridIndex(path=str(tmp_path / "q")) as index:
        assert index.dimension is None
        assert await index.search_dense([1.0, 0.0], where=_EVERYONE, limit=5) == []
        assert await index.search_sparse(_ENCODER.query("gpu"), where=_EVERYONE, limit=5) == []
        assert await index.count() == 0
        await index.delete(source="question", ref="q-1")
        with pytest.raises(ClientStateError, match="ensure_collection"):
            await _add(index, [_question(0, "too early")], dense=None)
        await index.ensure_collection(2)
        assert await index.search_dense([1.0, 0.0], where=_EVERYONE, limit=5) == []
        assert await index.search_sparse(SparseVector([], []), where=_EVERYONE, limit=5) == []


async def test_lifecycle_and_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        HybridIndex()
    with pytest.raises(ValueError, match="exactly one"):
        HybridIndex(url="http://localhost:6333", path=str(tmp_path))
    index = HybridIndex(path=str(tmp_path / "made" / "here"))
    with pytest.raises(ClientStateError, match="not open"):
        await index.count()
    await index.open()
    await index.open()
    assert (tmp_path / "made" / "here").is_dir()
    await index.ensure_collection(2)
    with pytest.raises(ValueError, match="same length"):
        await index.upsert([_question(0, "x")], sparse=[], dense=None)
    await index.aclose()
    await index.aclose()
    with pytest.raises(ClientStateError, match="closed"):
        await index.count()
    with pytest.raises(ClientStateError, match="closed"):
        await index.open()


def test_from_settings_picks_server_or_local_mode(tmp_path: Path) -> None:
    local = HybridIndex.from_settings(
        load_settings(qdrant_path=str(tmp_path), retrieval_collection="c1")
    )
    assert (local.url, local.path, local.collection) == (None, str(tmp_path), "c1")
    assert local.state_collection == "c1_state"
    server = HybridIndex.from_settings(
        load_settings(qdrant_url="http://qdrant:6333", qdrant_api_key="k")
    )
    assert server.url is not None
    assert server.url.startswith("http://qdrant:6333")
    assert server.path is None
