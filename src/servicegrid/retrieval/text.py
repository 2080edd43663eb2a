"""Text handling for the index: tokens for BM25, chunks to embed, excerpts to cite."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["STOP_WORDS", "chunk_text", "excerpt", "tokenise"]

STOP_WORDS: frozenset[str] = frozenset(
    """
    a an and are as at be but by for from has have he her his i if in into is it its me my
    no not of on or our she so such that the their them then there these they this to was
    we were what when where which who will with you your
    """.split()  # noqa: SIM905 (a word list reads better as text)
)

_WORD = re.compile(r"\w+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_ELLIPSIS = "…"


def tokenise(text: str) -> list[str]:
    """Lower-cased ``\\w+`` words (digits kept), stop words dropped unless only those are left."""
    words = _WORD.findall(text.lower())
    content = [word for word in words if word not in STOP_WORDS]
    return content or words


@dataclass(frozen=True, slots=True)
class _Piece:
    """A sentence, or part of an over-long one, and the paragraph it came from."""

    paragraph: int
    words: tuple[str, ...]


def _sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(paragraph.strip()) if s]


def _pieces(text: str, longest: int) -> list[_Piece]:
    """Sentences in order, those over ``longest`` words cut into runs of ``longest`` words."""
    pieces: list[_Piece] = []
    for number, paragraph in enumerate(_PARAGRAPH_BREAK.split(text)):
        for sentence in _sentences(paragraph):
            words = sentence.split()
            for start in range(0, len(words), longest):
                pieces.append(_Piece(number, tuple(words[start : start + longest])))
    return pieces


def _join(pieces: list[_Piece]) -> str:
    parts: list[str] = []
    for i, piece in enumerate(pieces):
        if i:
            parts.append("\n\n" if piece.paragraph != pieces[i - 1].paragraph else " ")
        parts.append(" ".join(piece.words))
    return "".join(parts)


def _tail(pieces: list[_Piece], overlap: int) -> list[_Piece]:
    """What the next chunk repeats: the whole trailing sentences that fit in ``overlap`` words,
    or the last ``overlap`` words when even the last sentence is longer."""
    tail: list[_Piece] = []
    size = 0
    for piece in reversed(pieces):
        if size + len(piece.words) > overlap:
            break
        tail.insert(0, piece)
        size += len(piece.words)
    if not tail and overlap and pieces:
        last = pieces[-1]
        tail = [_Piece(last.paragraph, last.words[-overlap:])]
    return tail


def chunk_text(text: str, *, max_words: int = 150, overlap: int = 30) -> list[str]:
    """Cut ``text`` into chunks of at most ``max_words`` whitespace-separated words.

    Paragraphs (blank-line breaks) are cut into sentences and whole sentences are packed
    into each chunk; a sentence longer than ``max_words - overlap`` words is cut by words.
    Each chunk after the first starts with about ``overlap`` words of the one before
    (whole sentences where they fit). Paragraph breaks survive as blank lines. Raises
    ValueError unless ``0 <= overlap < max_words``.
    """
    if not 0 <= overlap < max_words:
        raise ValueError(f"need 0 <= overlap < max_words, got {overlap=} {max_words=}")
    chunks: list[str] = []
    current: list[_Piece] = []
    size = 0
    # every piece has at most max_words - overlap words, so a tail plus one piece always fits
    for piece in _pieces(text, max_words - overlap):
        if current and size + len(piece.words) > max_words:
            chunks.append(_join(current))
            current = _tail(current, overlap)
            size = sum(len(p.words) for p in current)
        current.append(piece)
        size += len(piece.words)
    if current:
        chunks.append(_join(current))
    return chunks


def _shorten(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - len(_ELLIPSIS)]
    if not text[len(cut)].isspace() and " " in cut:
        cut = cut[: cut.rfind(" ")]  # drop the word the cut went through
    return cut.rstrip(" ,;:-") + _ELLIPSIS


def excerpt(text: str, query: str, *, max_chars: int = 300) -> str:
    """The run of sentences of ``text`` that fits in ``max_chars`` and shares the most distinct
    query tokens, starting at a sentence that shares one (the earliest on ties).

    One sentence too long is cut at a word boundary and ends with "…". With nothing
    shared, it is the start of ``text``.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    sentences = [
        " ".join(sentence.split())
        for paragraph in _PARAGRAPH_BREAK.split(text)
        for sentence in _sentences(paragraph)
    ]
    if not sentences:
        return ""
    wanted = set(tokenise(query))
    shared = [wanted.intersection(tokenise(sentence)) for sentence in sentences]
    starts = [i for i, found in enumerate(shared) if found] or [0]
    best_start, best_end, best_score = 0, 1, -1
    for start in starts:
        end, length, found = start + 1, len(sentences[start]), set(shared[start])
        while end < len(sentences) and length + 1 + len(sentences[end]) <= max_chars:
            length += 1 + len(sentences[end])
            found |= shared[end]
            end += 1
        if len(found) > best_score:
            best_start, best_end, best_score = start, end, len(found)
    return _shorten(" ".join(sentences[best_start:best_end]), max_chars)
