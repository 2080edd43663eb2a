"""Cited answers from retrieval hits: an LLM's answer when one is configured and up, else an
extractive one built from the hits' own sentences.

.. code-block:: python

    answer = await compose_answer(query, hits, llm=client, model="llama3")
    answer.text, answer.mode, answer.used  # "... [1] ... [3]", "llm", (1, 3)

Sources are numbered from 1 in hit order; ``[n]`` in the text cites ``hits[n - 1]``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from servicegrid._validate import check_count, check_number
from servicegrid.errors import DeadlineExceeded, ServiceError
from servicegrid.llm import DistributedLLMClient
from servicegrid.retrieval.chunks import Chunk, Hit

__all__ = [
    "NO_MATCH",
    "Answer",
    "build_messages",
    "cited_numbers",
    "compose_answer",
    "extractive_answer",
]

NO_MATCH: Final = "No indexed question or document matches this query."

_SOURCE_CHARS: Final = 1500
_TITLE_CHARS: Final = 200
_SENTENCE_CHARS: Final = 400
_ERROR_CHARS: Final = 300
_EXTRACT_FROM: Final = 5  # the extractive answer reads only the best few hits

_SYSTEM: Final = (
    "You answer questions using only the numbered sources the user gives you. "
    "Cite every claim with the number of its source in square brackets, as [1] or [2][3]. "
    "If the sources do not answer the question, say so plainly instead of guessing. "
    "Be concise: a few sentences."
)

_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_CITATION = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]")
_STOP_LIST: Final = (
    "a an and are as at be but by can do does for from has have how i in is it its me my "
    "not of on or so that the their there this to was we what when where which who why "
    "will with you your"
)
_STOP_WORDS: Final = frozenset(_STOP_LIST.split())


@dataclass(frozen=True)
class Answer:
    """An answer's text, how it was made, and the 1-based source numbers it cites.

    ``error`` says why the LLM was not used when one was configured but failed.
    """

    text: str
    mode: Literal["llm", "extractive"]
    used: tuple[int, ...]
    error: str | None = None


def _clip(text: str, limit: int) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _label(chunk: Chunk) -> str:
    if chunk.source == "question":
        title = _clip(chunk.title, _TITLE_CHARS)
        return f"question {chunk.ref}: {title}" if title else f"question {chunk.ref}"
    if chunk.page is not None:
        return f"document {chunk.ref}, page {chunk.page}"
    return f"document {chunk.ref}"


def _user_line(user_context: Mapping[str, Any]) -> str | None:
    name = next(
        (
            str(user_context[key]).strip()
            for key in ("full_name", "name", "username")
            if user_context.get(key)
        ),
        "",
    )
    interests = user_context.get("interests") or ()
    if isinstance(interests, str):
        interests = [interests]
    topics = ", ".join(str(topic).strip() for topic in interests if str(topic).strip())
    parts = [f"name: {_clip(name, 100)}"] if name else []
    if topics:
        parts.append(f"interests: {_clip(topics, 300)}")
    return f"About the user ({'; '.join(parts)})." if parts else None


def build_messages(
    query: str, hits: Sequence[Hit], *, user_context: Mapping[str, Any] | None = None
) -> list[dict[str, str]]:
    """OpenAI chat messages asking for an answer to ``query`` from the numbered ``hits``.

    Each source's text is cut to 1,500 characters; ``user_context`` (a user record:
    ``full_name``/``name``/``username``, ``interests``) adds one line about the user.
    """
    sources = [
        f"[{number}] ({_label(hit.chunk)}) {_clip(hit.chunk.text, _SOURCE_CHARS)}"
        for number, hit in enumerate(hits, start=1)
    ]
    parts = ["Sources:\n" + "\n\n".join(sources)]
    if user_context and (line := _user_line(user_context)):
        parts.append(line)
    parts.append(f"Question: {query.strip()}")
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def cited_numbers(text: str, count: int) -> tuple[int, ...]:
    """The distinct ``[n]`` (also ``[1, 2]``, ``[1][3]``) in ``text`` with 1 <= n <= ``count``,
    in order of first appearance."""
    seen: dict[int, None] = {}
    for match in _CITATION.finditer(text):
        for number in (int(part) for part in match.group(1).split(",")):
            if 1 <= number <= count:
                seen.setdefault(number)
    return tuple(seen)


def _tokens(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOP_WORDS}


def _sentences(text: str) -> list[str]:
    return [_clip(part, _SENTENCE_CHARS) for part in _SENTENCE_END.split(text) if part.strip()]


def extractive_answer(query: str, hits: Sequence[Hit], *, max_sentences: int = 3) -> Answer:
    """Up to ``max_sentences`` sentences of the best hits sharing the most query words, in hit
    order, each followed by its source's ``[n]``; no LLM involved, and the same every run.

    Raises ValueError when ``max_sentences`` is below 1."""
    check_count("max_sentences", max_sentences)
    if not hits:
        return Answer(NO_MATCH, "extractive", ())
    wanted = _tokens(query)
    # (shared words, rank, position, sentence); best first, ties to the earlier hit and sentence
    scored: list[tuple[int, int, int, str]] = []
    seen: set[str] = set()
    for rank, hit in enumerate(hits[:_EXTRACT_FROM]):
        for position, sentence in enumerate(_sentences(hit.chunk.text)):
            if hit.chunk.quotable(sentence) and sentence.lower() not in seen:
                seen.add(sentence.lower())
                scored.append((len(wanted & _tokens(sentence)), rank, position, sentence))
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    chosen = [item for item in scored[:max_sentences] if item[0] > 0]
    if not chosen:
        # nothing shares a word with the query: the top hit's opening still beats no answer
        chosen = scored[:1]
    if not chosen:
        return Answer(NO_MATCH, "extractive", ())
    chosen.sort(key=lambda item: (item[1], item[2]))
    text = " ".join(f"{sentence} [{rank + 1}]" for _, rank, _, sentence in chosen)
    return Answer(text, "extractive", tuple(dict.fromkeys(rank + 1 for _, rank, _, _ in chosen)))


def _reason(error: ServiceError) -> str:
    return _clip(f"LLM unavailable: {type(error).__name__}: {error}", _ERROR_CHARS)


async def compose_answer(
    query: str,
    hits: Sequence[Hit],
    *,
    llm: DistributedLLMClient | None,
    model: str | None,
    user_context: Mapping[str, Any] | None = None,
    max_tokens: int = 400,
    timeout: float = 30.0,  # noqa: ASYNC109 - bounds the LLM call only, then falls back
) -> Answer:
    """The LLM's cited answer (temperature 0, within ``timeout`` seconds), or the extractive
    one: without ``llm`` or hits, or with ``error`` set when the LLM fails (any ServiceError,
    including running out of time) or answers nothing. Raises ValueError for a bad
    ``timeout`` or ``max_tokens``."""
    check_number("timeout", timeout, inclusive=False)
    check_count("max_tokens", max_tokens)
    if llm is None or not hits:
        return extractive_answer(query, hits)
    messages = build_messages(query, hits, user_context=user_context)
    try:
        # chat() takes no per-call timeout (its params go into the request body)
        async with asyncio.timeout(timeout):
            completion = await llm.chat(messages, model=model, temperature=0, max_tokens=max_tokens)
    except TimeoutError:
        late = DeadlineExceeded(f"no answer within {timeout:g} s", service="llm")
        return replace(extractive_answer(query, hits), error=_reason(late))
    except ServiceError as exc:
        return replace(extractive_answer(query, hits), error=_reason(exc))
    text = completion.content.strip()
    if not text:
        return replace(extractive_answer(query, hits), error="LLM answered nothing")
    return Answer(text, "llm", cited_numbers(text, len(hits)))
