"""The model adapters' three stages give what the models give when called directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import CrossEncoder

from servicegrid.models import (
    MINILM_NAME,
    BiEncoderReranker,
    CrossEncoderReranker,
    SentenceTransformerEmbedder,
    resolve_model_path,
)
from servicegrid.models.embedder import cosine

TEXTS = [
    "Metformin is commonly used to treat type 2 diabetes",
    "Insulin therapy is essential for type 1 diabetes",
    "The Eiffel Tower is in Paris",
]


def run(adapter: object, items: list[object]) -> list[object]:
    prepared = adapter.preprocess(items)  # type: ignore[attr-defined]
    return list(adapter.postprocess(adapter.forward(prepared), items))  # type: ignore[attr-defined]


def test_embeddings_match_sentence_transformers_encode(minilm: SentenceTransformerEmbedder) -> None:
    items = [minilm.item(text) for text in TEXTS]
    ours = run(minilm, items)
    reference = minilm.encode(TEXTS)
    assert minilm.dimension == 384
    for embedding, expected in zip(ours, reference, strict=True):
        assert embedding.values.shape == (384,)  # type: ignore[attr-defined]
        assert cosine(embedding.values, expected) >= 0.999  # type: ignore[attr-defined]


def test_batch_order_and_padding_do_not_change_an_embedding(
    minilm: SentenceTransformerEmbedder,
) -> None:
    alone = run(minilm, [minilm.item(TEXTS[0])])[0]
    padded = run(minilm, [minilm.item("short"), minilm.item(TEXTS[0] + " " + TEXTS[1])])
    together = run(minilm, [minilm.item(TEXTS[2]), minilm.item(TEXTS[0])])[1]
    assert len(padded) == 2
    assert cosine(alone.values, together.values) >= 0.9999  # type: ignore[attr-defined]


def test_normalize_and_truncation_are_reported(minilm: SentenceTransformerEmbedder) -> None:
    short = minilm.item(TEXTS[0], normalize=True)
    long = minilm.item("word " * 10_000)
    assert not short.truncated
    assert short.tokens < minilm.max_length
    assert long.truncated
    assert long.tokens == minilm.max_length
    assert len(long.text) < 50_000  # cut before tokenizing: a huge text stays cheap
    embedded = run(minilm, [short, long])
    assert embedded[0].norm == pytest.approx(1.0)  # type: ignore[attr-defined]
    assert float(np.linalg.norm(embedded[0].values)) == pytest.approx(1.0, abs=1e-5)  # type: ignore[attr-defined]
    assert embedded[1].truncated  # type: ignore[attr-defined]


def test_bi_encoder_reranker_puts_the_relevant_document_first(
    minilm: SentenceTransformerEmbedder,
) -> None:
    reranker = BiEncoderReranker(minilm, name=MINILM_NAME)
    query = "diabetes treatment"
    items = [reranker.item(query, document) for document in (TEXTS[2], TEXTS[0])]
    scores = run(reranker, items)
    assert scores[1] > scores[0]
    assert all(-1.0 <= s <= 1.0 for s in scores)  # type: ignore[operator]
    assert "not a cross-encoder" in reranker.description


def test_cross_encoder_reranker_matches_predict(tiny_cross_encoder: Path) -> None:
    reranker = CrossEncoderReranker(tiny_cross_encoder, name="tiny")
    pairs = [("diabetes", document) for document in TEXTS]
    scores = run(reranker, [reranker.item(q, d) for q, d in pairs])
    expected = CrossEncoder(str(tiny_cross_encoder), device="cpu").predict(pairs)
    np.testing.assert_allclose(np.array(scores, dtype=np.float32), expected, rtol=1e-5)


def test_unknown_model_names_say_what_was_looked_for(tmp_path: Path) -> None:
    assert resolve_model_path("all-MiniLM-L6-v2").is_dir()
    assert resolve_model_path(str(tmp_path)) == tmp_path
    with pytest.raises(FileNotFoundError, match="neither a packaged model"):
        resolve_model_path("BAAI/bge-large-en")


def test_measuring_while_a_batch_is_tokenized_never_corrupts_the_batch(
    minilm: SentenceTransformerEmbedder,
) -> None:
    """Regression: a shared fast tokenizer flipped padding mid-batch (unequal lengths).

    A 1 µs thread switch interval makes the race window (microseconds, between
    setting padding and encoding) show up in a few hundred batches: with one
    tokenizer for both threads this failed about 5 % of them.
    """
    import sys
    import threading

    batch = [minilm.item(" ".join(["word"] * (n % 30 + 1))) for n in range(60)]
    failures: list[BaseException] = []
    stop = threading.Event()

    def measure() -> None:
        while not stop.is_set():
            minilm.item("a short text to measure")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    worker = threading.Thread(target=measure)
    worker.start()
    try:
        for _ in range(300):
            try:
                features = minilm.preprocess(batch)
                assert features["input_ids"].shape[0] == len(batch)
            except (ValueError, AssertionError) as error:
                failures.append(error)
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(interval)
    assert not failures, failures[:1]


def test_measuring_many_texts_at_once_gives_what_one_at_a_time_does(
    minilm: SentenceTransformerEmbedder,
) -> None:
    texts = [*TEXTS, "word " * 10_000, ""]
    assert minilm.items(texts, normalize=True) == [
        minilm.item(text, normalize=True) for text in texts
    ]


def near(guess: int, measured: int) -> bool:
    """A size guess close enough for admission: within a quarter, or three tokens."""
    return abs(guess - measured) <= max(3, measured // 4)


@pytest.mark.parametrize("words", [3, 40, 180, 5_000])
def test_the_size_guess_from_characters_is_near_the_measured_size_and_within_the_limit(
    minilm: SentenceTransformerEmbedder, words: int
) -> None:
    vocabulary = " ".join(TEXTS).split()
    text = " ".join(vocabulary[i % len(vocabulary)] for i in range(words))
    guess, measured = minilm.estimate_tokens(text), minilm.item(text).tokens
    assert 1 <= guess <= minilm.max_length
    assert near(guess, measured)


def test_rerankers_measure_all_documents_at_once_as_one_by_one(
    minilm: SentenceTransformerEmbedder, tiny_cross_encoder: Path
) -> None:
    cross = CrossEncoderReranker(tiny_cross_encoder, name="tiny")
    bi = BiEncoderReranker(minilm, name="bi")
    for reranker in (cross, bi):
        assert reranker.items("query", TEXTS) == [reranker.item("query", t) for t in TEXTS]
        for text, item in zip(TEXTS, reranker.items("query", TEXTS), strict=True):
            assert near(reranker.estimate_tokens("query", text), item.tokens)
