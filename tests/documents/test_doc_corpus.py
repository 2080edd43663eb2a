"""The layout benchmark's corpus generator, scorer and a peer adapter (bench/doc_corpus)."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pdfplumber
import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
from bench.doc_corpus import KINDS, DocumentTruth, TableTruth, generate, truth_path
from bench.doc_corpus.peers import PEERS
from bench.doc_corpus.score import (
    Counts,
    duplicated_word_rate,
    edit_distance,
    header_footer_pr,
    ocr_word_accuracy,
    reading_order_similarity,
    table_cell_f1,
    words,
)

SEED = 11


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, DocumentTruth]]:
    """One document of each kind, by kind."""
    paths = generate(tmp_path_factory.mktemp("corpus"), seed=SEED, count=len(KINDS))
    found = {}
    for path in paths:
        truth = DocumentTruth.load(truth_path(path))
        found[path.stem.split("-", 2)[2]] = (path, truth)
    return found


def test_the_same_seed_gives_the_same_corpus(
    corpus: dict[str, tuple[Path, DocumentTruth]], tmp_path: Path
) -> None:
    again = generate(tmp_path, seed=SEED, count=len(KINDS))
    for path in again:
        first, truth = corpus[path.stem.split("-", 2)[2]]
        assert DocumentTruth.load(truth_path(path)) == truth
        assert path.read_bytes() == first.read_bytes()


def test_another_seed_gives_other_text(
    corpus: dict[str, tuple[Path, DocumentTruth]], tmp_path: Path
) -> None:
    (path,) = generate(tmp_path, seed=SEED + 1, count=1)
    assert DocumentTruth.load(truth_path(path)).pages != corpus["one-column"][1].pages


def test_each_document_has_what_its_kind_promises(
    corpus: dict[str, tuple[Path, DocumentTruth]],
) -> None:
    assert set(corpus) == set(KINDS)
    pages = {kind: truth.pages for kind, (_, truth) in corpus.items()}
    for kind, columns in (("one-column", 1), ("two-column", 2), ("three-column", 3)):
        assert {page.columns for page in pages[kind]} == {columns}
    for kind in ("ruled", "unruled"):
        tables = [t for page in pages[f"{kind}-table"] for t in page.tables if t.kind == kind]
        assert tables
        assert all(len(t.rows) >= 4 and t.header_rows == 1 for t in tables)
        assert all(len({len(row) for row in t.rows}) == 1 for t in tables)
    body = [text for page in pages["lists"] for text in page.body]
    items = [item for page in pages["lists"] for item in page.list_items]
    assert len(items) >= 3
    assert set(items) <= set(body)
    assert any(page.footnotes for page in pages["footnotes"])
    running = pages["running"]
    assert len(running) >= 2
    assert all(page.headers == running[0].headers and page.footers for page in running)
    hyphenated = words(w for page in pages["hyphenation"] for w in page.hyphenated)
    assert hyphenated
    assert set(hyphenated) <= set(
        words(t for page in pages["hyphenation"] for t in page.all_text())
    )
    assert any(not text.isascii() for page in pages["accented"] for text in page.body)


def test_rotated_and_scanned_pages_are_what_the_truth_says(
    corpus: dict[str, tuple[Path, DocumentTruth]],
) -> None:
    path, truth = corpus["rotated"]
    document = pdfium.PdfDocument(path)
    try:
        rotations = [document[i].get_rotation() for i in range(len(document))]
    finally:
        document.close()
    assert rotations == [page.rotation for page in truth.pages]
    assert 90 in rotations
    path, truth = corpus["scanned"]
    assert all(page.scanned and page.body for page in truth.pages)
    with pdfplumber.open(path) as pdf:
        assert all(not page.chars and page.images for page in pdf.pages)


def test_the_truth_scores_perfectly_against_itself(
    corpus: dict[str, tuple[Path, DocumentTruth]],
) -> None:
    _, truth = corpus["two-column"]
    true_words = words(truth.pages[0].body)
    assert reading_order_similarity(true_words, true_words) == 1.0
    shuffled = true_words[:]
    random.Random(1).shuffle(shuffled)
    assert reading_order_similarity(true_words, shuffled) < 0.5
    _, truth = corpus["ruled-table"]
    tables = [table for page in truth.pages for table in page.tables]
    scores = table_cell_f1(tables, [table.rows for table in tables])
    assert scores["ruled"].f1 == 1.0
    assert scores["spurious"].got == 0


def test_words_are_compared_normalized() -> None:
    decomposed = unicodedata.normalize("NFD", "Café")
    assert words([f"{decomposed}, naïve² (São Paulo)."]) == ["café", "naïve", "são", "paulo"]
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1
    assert edit_distance(["k", "i", "t", "t", "e", "n"], list("sitting")) == 3
    assert edit_distance([], ["x", "y"]) == 2
    assert ocr_word_accuracy(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 0.75


def test_a_repeated_table_row_is_a_duplicate() -> None:
    table = TableTruth(kind="unruled", rows=[["Region", "Year"], ["Porto", "1999"]])
    true_words = words(cell for row in table.rows for cell in row)
    repeated = [*table.rows, table.rows[1]]
    got_words = words(cell for row in repeated for cell in row)
    assert duplicated_word_rate([true_words], [true_words]) == 0.0
    assert duplicated_word_rate([true_words], [got_words]) == 0.5
    scores = table_cell_f1([table], [repeated])
    assert scores["unruled"] == Counts(matched=4, got=6, true=4)
    assert scores["unruled"].precision == pytest.approx(4 / 6)


def test_running_lines_score_by_page_and_text() -> None:
    true = [(1, "Annual Report"), (1, "Page 1"), (2, "Annual Report"), (2, "Page 2")]
    got = [(1, "annual report"), (2, "Annual  Report"), (2, "Page 3")]
    counts = header_footer_pr(true, got)
    assert counts == Counts(matched=2, got=3, true=4)
    assert counts.precision == pytest.approx(2 / 3)
    assert counts.recall == 0.5


def test_the_pdfplumber_adapter_reads_a_corpus_pdf(
    corpus: dict[str, tuple[Path, DocumentTruth]],
) -> None:
    path, truth = corpus["one-column"]
    extraction = PEERS["pdfplumber"].extract(path.read_bytes())
    assert len(extraction.pages) == len(truth.pages)
    assert extraction.pages[0].tables is None
    assert extraction.seconds > 0
    similarity = reading_order_similarity(
        words(truth.pages[0].body), words(extraction.pages[0].body)
    )
    assert similarity > 0.6
