"""Keyword search over questions: the terms, the database's candidate filter, the scores.

Everything here is pure. The store narrows the questions down to those whose
lower-cased :func:`search_text` holds any query term (:func:`like_pattern`), then
:func:`rank` scores those candidates, BM25F-style without its length boost::

    score = sum over terms t of  idf(t) * sum over fields f of  w_f * tf / (tf + K * norm_f)
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))
    norm_f = max(1, 1 - B + B * len_f / avg_f)

with weights title 3, tags 2, body 1. ``tf`` counts the field's words equal to the
term (1 each) and those the term is a prefix of (0.5 each, terms of 3+ characters:
"database" finds "databases"). Long fields count less; short ones never more, so one
title match outranks any body-only match of a reasonable title. ``N`` is the number
of questions searched and ``df`` how many of them match the term. A question matches
when its score is above 0; ties keep the candidates' order (creation order).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "LIKE_ESCAPE",
    "STOP_WORDS",
    "Document",
    "like_pattern",
    "query_terms",
    "rank",
    "search_text",
    "tokenise",
]

LIKE_ESCAPE: Final = "\\"
_STOP_WORDS_TEXT: Final = (
    "a an and are as at be by can do does for from how i in is it of on or should "
    "that the this to was what when where which who why with"
)
STOP_WORDS: Final = frozenset(_STOP_WORDS_TEXT.split())

_WORD = re.compile(r"\w+")
_K: Final = 1.2
_B: Final = 0.75
_PREFIX_MATCH: Final = 0.5
_MIN_PREFIX_CHARS: Final = 3
# (weight, average length in words) of each field, in the order of _fields()
_FIELDS: Final = ((3.0, 8.0), (2.0, 3.0), (1.0, 60.0))


@dataclass(frozen=True, slots=True)
class Document:
    """The searchable text of one question."""

    title: str
    body: str
    tags: tuple[str, ...]


def tokenise(text: str) -> list[str]:
    """The lower-cased words (unicode ``\\w+``) of ``text``, in order."""
    return _WORD.findall(text.lower())


def query_terms(query: str) -> list[str]:
    """The distinct words of ``query`` less stop words; all its words if only stop words."""
    words = list(dict.fromkeys(tokenise(query)))
    return [word for word in words if word not in STOP_WORDS] or words


def search_text(title: str, body: str, tags: Sequence[str]) -> str:
    """What the store keeps for the candidate filter: every field, lower-cased."""
    return "\n".join([title, body, *tags]).lower()


def like_pattern(term: str) -> str:
    """``%term%`` for ``LIKE ... ESCAPE LIKE_ESCAPE``, with ``%``, ``_`` and the escape escaped."""
    escaped = (
        term.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


def _fields(document: Document) -> tuple[list[str], ...]:
    return tokenise(document.title), tokenise(" ".join(document.tags)), tokenise(document.body)


def _frequency(term: str, words: Sequence[str]) -> float:
    prefix = len(term) >= _MIN_PREFIX_CHARS
    total = 0.0
    for word in words:
        if word == term:
            total += 1.0
        elif prefix and word.startswith(term):
            total += _PREFIX_MATCH
    return total


def _term_score(term: str, fields: tuple[list[str], ...]) -> float:
    score = 0.0
    for words, (weight, average) in zip(fields, _FIELDS, strict=True):
        tf = _frequency(term, words)
        if tf:
            norm = max(1.0, 1.0 - _B + _B * len(words) / average)
            score += weight * tf / (tf + _K * norm)
    return score


def rank(
    documents: Sequence[Document], terms: Sequence[str], *, total_documents: int
) -> list[tuple[int, float]]:
    """``(index into documents, score)`` of every match, best first.

    ``total_documents`` is ``N``, how many questions were searched (at least
    ``len(documents)``).
    """
    fields = [_fields(document) for document in documents]
    raw = [[_term_score(term, f) for term in terms] for f in fields]
    searched = max(total_documents, len(documents))
    idf = []
    for column in range(len(terms)):
        df = sum(1 for row in raw if row[column] > 0)
        idf.append(math.log(1.0 + (searched - df + 0.5) / (df + 0.5)))
    hits = []
    for index, row in enumerate(raw):
        score = sum(weight * value for weight, value in zip(idf, row, strict=True))
        if score > 0:
            hits.append((index, score))
    hits.sort(key=lambda hit: -hit[1])  # stable: equal scores keep creation order
    return hits
