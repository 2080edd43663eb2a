"""Request bodies of the gateway's endpoints, in each upstream API's own field names.

Answers are plain dicts built by the routes; the ``*Answer`` models only document them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from servicegrid.errors import ValidationError

__all__ = [
    "EmbeddingsAnswer",
    "EmbeddingsRequest",
    "RerankDocument",
    "RerankRequest",
    "TeiEmbedRequest",
    "TeiRerankRequest",
    "check_text",
    "check_texts",
]


class _Body(BaseModel):
    # Unknown fields are ignored, as the real APIs' clients send options we do not use.
    model_config = ConfigDict(extra="ignore")


class EmbeddingsRequest(_Body):
    """OpenAI ``POST /v1/embeddings``; token arrays as ``input`` are not supported."""

    input: StrictStr | list[StrictStr]
    model: StrictStr | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: StrictStr | None = None


class _Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 little-endian float32")


class _Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsAnswer(BaseModel):
    """OpenAI's embeddings answer: one item per input, in order; tokens by the model's tokenizer."""

    object: Literal["list"] = "list"
    data: list[_Embedding]
    model: str
    usage: _Usage


class RerankDocument(_Body):
    """A document given as ``{"text": ...}`` (Cohere v1, Jina)."""

    text: StrictStr


class RerankRequest(_Body):
    """Cohere/Jina ``POST /v1/rerank``; ``return_documents`` defaults to false, as Cohere's."""

    query: StrictStr
    documents: list[StrictStr | RerankDocument]
    model: StrictStr | None = None
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False


class TeiEmbedRequest(_Body):
    """TEI ``POST /embed``; ``model`` is an extension (TEI serves one model)."""

    inputs: StrictStr | list[StrictStr]
    normalize: bool = True
    truncate: bool = False
    model: StrictStr | None = None


class TeiRerankRequest(_Body):
    """TEI ``POST /rerank``; ``model`` is an extension (TEI serves one model)."""

    query: StrictStr
    texts: list[StrictStr]
    return_text: bool = False
    raw_scores: bool = False
    truncate: bool = False
    model: StrictStr | None = None


def check_texts(field: str, texts: list[str], *, max_items: int, max_chars: int) -> list[str]:
    """``texts`` when non-empty, within ``max_items``, each non-empty and within ``max_chars``;
    else a ValidationError naming ``field``."""
    if not texts:
        raise ValidationError.for_field(field, "must not be empty")
    if len(texts) > max_items:
        raise ValidationError.for_field(
            field, f"has {len(texts)} items, more than the limit of {max_items}"
        )
    for index, text in enumerate(texts):
        if not text.strip():
            raise ValidationError.for_field(field, f"item {index} is an empty string")
        check_text(field, text, max_chars=max_chars, what=f"item {index}")
    return texts


def check_text(field: str, text: str, *, max_chars: int, what: str = "the text") -> str:
    """``text`` when within ``max_chars`` and valid UTF-8 (JSON may carry lone surrogates)."""
    if len(text) > max_chars:
        raise ValidationError.for_field(
            field, f"{what} has {len(text)} characters, more than {max_chars}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError.for_field(
            field, f"{what} is not valid Unicode (a lone surrogate at {exc.start})"
        ) from None
    return text
