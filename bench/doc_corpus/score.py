"""Pure scoring functions: reading order, table cells, running lines, duplicates, OCR.

Words are compared normalized (:func:`words`): NFC, lower case, punctuation, symbols and
superscript digits removed, tokens that end up empty dropped.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from bench.doc_corpus.truth import TableTruth

__all__ = [
    "Counts",
    "duplicated_word_rate",
    "duplicated_words",
    "edit_distance",
    "header_footer_pr",
    "normalize",
    "ocr_word_accuracy",
    "reading_order_similarity",
    "table_cell_f1",
    "words",
]

Rows = Sequence[Sequence[str]]


def normalize(token: str) -> str:
    """One token as compared: NFC, lower case, only letters, digits and marks kept."""
    token = unicodedata.normalize("NFC", token).lower()
    # Category "No" holds the superscript footnote markers; "Nd" the ordinary digits.
    return "".join(c for c in token if unicodedata.category(c)[0] in "LM" or c.isdecimal())


def words(texts: Iterable[str]) -> list[str]:
    """The normalized words of ``texts``, in order."""
    return [word for text in texts for word in map(normalize, text.split()) if word]


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (unit costs), one numpy row at a time."""
    if not a or not b:
        return max(len(a), len(b))
    ids: dict[str, int] = {}
    left = np.array([ids.setdefault(word, len(ids)) for word in a], dtype=np.int64)
    right = np.array([ids.setdefault(word, len(ids)) for word in b], dtype=np.int64)
    steps = np.arange(len(right) + 1, dtype=np.int64)
    previous = steps.copy()
    for i, word in enumerate(left, start=1):
        current = np.empty_like(previous)
        current[0] = i
        np.minimum(previous[:-1] + (right != word), previous[1:] + 1, out=current[1:])
        # Insertions chain left to right: current[j] = min over k <= j of current[k] + (j - k).
        previous = np.minimum.accumulate(current - steps) + steps
    return int(previous[-1])


def reading_order_similarity(true_words: Sequence[str], got_words: Sequence[str]) -> float:
    """1 - word edit distance / the longer sequence's length; 1.0 when both are empty."""
    longest = max(len(true_words), len(got_words))
    return 1.0 if longest == 0 else 1.0 - edit_distance(true_words, got_words) / longest


def ocr_word_accuracy(true_words: Sequence[str], got_words: Sequence[str]) -> float:
    """Word accuracy of OCR output: 1 - word edit distance / true words, floored at 0.

    An order-sensitive measure (a word error rate turned into an accuracy), not a
    bag-of-words recall: a recognised word in the wrong place counts as an error.
    """
    if not true_words:
        return 1.0 if not got_words else 0.0
    return max(0.0, 1.0 - edit_distance(true_words, got_words) / len(true_words))


@dataclass(slots=True)
class Counts:
    """Matched, reported and true items: precision, recall and F1 from them."""

    matched: int = 0
    got: int = 0
    true: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.matched + other.matched, self.got + other.got, self.true + other.true)

    @property
    def precision(self) -> float | None:
        return self.matched / self.got if self.got else None

    @property
    def recall(self) -> float | None:
        return self.matched / self.true if self.true else None

    @property
    def f1(self) -> float | None:
        if not self.got and not self.true:
            return None
        total = self.got + self.true
        return 2 * self.matched / total


def _cells(rows: Rows) -> set[tuple[int, int, str]]:
    """(row, column, normalized text) of each non-empty cell."""
    found = set()
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            normalized = " ".join(words([text]))
            if normalized:
                found.add((r, c, normalized))
    return found


def table_cell_f1(
    true_tables: Sequence[TableTruth], got_tables: Sequence[Rows]
) -> dict[str, Counts]:
    """Cell counts of one page's tables, keyed by the true table's kind.

    A cell matches when its table-relative row, column and normalized text match. True
    and found tables are paired one to one, largest cell overlap first; the cells of a
    found table paired with none land under ``"spurious"`` (false positives of no kind).
    """
    true_cells = [_cells(table.rows) for table in true_tables]
    got_cells = [_cells(rows) for rows in got_tables]
    pairs = sorted(
        ((len(t & g), i, j) for i, t in enumerate(true_cells) for j, g in enumerate(got_cells)),
        reverse=True,
    )
    paired: dict[int, int] = {}
    used: set[int] = set()
    for overlap, i, j in pairs:
        if overlap and i not in paired and j not in used:
            paired[i] = j
            used.add(j)
    scores = {"ruled": Counts(), "unruled": Counts(), "spurious": Counts()}
    for i, table in enumerate(true_tables):
        found = got_cells[paired[i]] if i in paired else set()
        score = Counts(len(true_cells[i] & found), len(found), len(true_cells[i]))
        scores[table.kind] = scores[table.kind] + score
    for index, cells in enumerate(got_cells):
        if index not in used:
            scores["spurious"] = scores["spurious"] + Counts(0, len(cells), 0)
    return scores


def header_footer_pr(true: Iterable[tuple[int, str]], got: Iterable[tuple[int, str]]) -> Counts:
    """Running lines as a set of (page, normalized text): matched, reported and true counts."""

    def keyed(lines: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
        return {(page, " ".join(words([text]))) for page, text in lines}

    true_set, got_set = keyed(true), keyed(got)
    return Counts(len(true_set & got_set), len(got_set), len(true_set))


def duplicated_words(true_words: Sequence[str], got_words: Sequence[str]) -> int:
    """How many more times words of the truth were emitted than they occur in it.

    Only words present in the truth count, so a misread word is not a duplicate, while
    a table row or paragraph emitted twice is.
    """
    expected, emitted = Counter(true_words), Counter(got_words)
    return sum(max(0, emitted[word] - count) for word, count in expected.items())


def duplicated_word_rate(
    page_words_true: Sequence[Sequence[str]], page_words_got: Sequence[Sequence[str]]
) -> float:
    """Duplicated words (counted page by page) over all true words."""
    total = sum(len(page) for page in page_words_true)
    extra = sum(
        duplicated_words(t, g) for t, g in zip(page_words_true, page_words_got, strict=True)
    )
    return extra / total if total else 0.0
