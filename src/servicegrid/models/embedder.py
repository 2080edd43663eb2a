"""Sentence embeddings with sentence-transformers, split into batch-engine stages."""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from sentence_transformers import SentenceTransformer

__all__ = ["EmbedItem", "Embedding", "SentenceTransformerEmbedder", "normalized_embeddings"]

# A word-piece token covers at least one character, and long vocabulary words rarely
# exceed a few dozen; cutting the text beyond this many characters per allowed token
# never changes what the model sees, and keeps tokenizing a huge text cheap.
_CHARS_PER_TOKEN_BOUND = 32
# English word pieces average four to five characters, spaces included: a size guessed
# from the characters without the tokenizer lands within a few tokens of the measured
# one, close enough to refuse a request that cannot fit before paying to tokenize it.
CHARS_PER_TOKEN_GUESS = 5


@dataclass(frozen=True, slots=True)
class EmbedItem:
    """One text to embed; ``truncated`` is set when it was cut to the model's length."""

    text: str
    normalize: bool = False
    tokens: int = 0
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Embedding:
    """One embedding: float32 values, their L2 norm, whether the input was truncated, and how
    many tokens of it the model read (special tokens included)."""

    values: npt.NDArray[np.float32]
    norm: float
    truncated: bool
    tokens: int = 0


class SentenceTransformerEmbedder:
    """A sentence-transformers model as a batch-engine adapter on one device."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str,
        device: str = "cpu",
        max_length: int | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.device = device
        self.description = description
        self.model = SentenceTransformer(str(model_path), device=device)
        self.model.eval()
        if max_length is not None:
            self.model.max_seq_length = max_length
        self.max_length = int(self.model.max_seq_length or 512)
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        # A fast tokenizer keeps its truncation/padding settings as mutable state, so one
        # instance must never serve two threads at once: measuring (any thread) gets its
        # own copy behind a lock; the model's own is left to the preprocess stage.
        self._tokenizer: Any = copy.deepcopy(self.model.tokenizer)
        self._tokenizer_lock = threading.Lock()

    def item(self, text: str, *, normalize: bool = False) -> EmbedItem:
        """Measure ``text`` in tokens and cut it to what the model reads."""
        return self.items([text], normalize=normalize)[0]

    def items(self, texts: Sequence[str], *, normalize: bool = False) -> list[EmbedItem]:
        """:meth:`item` for many texts in one tokenizer call (a batch call runs without the GIL)."""
        cuts = [text[: self.max_length * _CHARS_PER_TOKEN_BOUND] for text in texts]
        with self._tokenizer_lock:
            encoded = self._tokenizer(
                cuts, add_special_tokens=True, truncation=True, max_length=self.max_length + 1
            )["input_ids"]
        return [
            EmbedItem(
                cut,
                normalize,
                min(len(ids), self.max_length),
                len(cut) < len(text) or len(ids) > self.max_length,
            )
            for text, cut, ids in zip(texts, cuts, encoded, strict=True)
        ]

    def estimate_tokens(self, text: str) -> int:
        """A guess at ``item(text).tokens`` from the text's length alone, without the tokenizer."""
        return min(self.max_length, len(text) // CHARS_PER_TOKEN_GUESS + 2)

    # ---- the batch-engine stages -------------------------------------------------------

    def cost(self, item: EmbedItem) -> int:
        return max(item.tokens, 1)

    def preprocess(self, items: Sequence[EmbedItem]) -> dict[str, Any]:
        features: dict[str, Any] = self.model.preprocess([item.text for item in items])
        return {
            key: value.to(self.device) if isinstance(value, torch.Tensor) else value
            for key, value in features.items()
        }

    def forward(self, prepared: dict[str, Any]) -> torch.Tensor:
        with torch.inference_mode():
            output = self.model(prepared)
        embeddings: torch.Tensor = output["sentence_embedding"]
        return embeddings.float().cpu()

    def postprocess(self, raw: torch.Tensor, items: Sequence[EmbedItem]) -> list[Embedding]:
        return normalized_embeddings(raw.numpy(), items)

    # ---- the reference path --------------------------------------------------------

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, normalize: bool = False
    ) -> npt.NDArray[np.float32]:
        """Plain in-process ``SentenceTransformer.encode``: the baseline for the service."""
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r}, device={self.device!r})"


def normalized_embeddings(
    vectors: npt.NDArray[np.float32], items: Sequence[EmbedItem]
) -> list[Embedding]:
    """One :class:`Embedding` per row, scaled to unit length where its item asked for it."""
    results = []
    for vector, item in zip(vectors, items, strict=True):
        norm = float(np.linalg.norm(vector))
        unit = item.normalize and norm > 0
        values = vector / norm if unit else vector
        results.append(
            Embedding(
                values.astype(np.float32, copy=False),
                1.0 if unit else norm,
                item.truncated,
                item.tokens,
            )
        )
    return results


def cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    denominator = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    return float(np.dot(a, b)) / denominator if denominator and math.isfinite(denominator) else 0.0
