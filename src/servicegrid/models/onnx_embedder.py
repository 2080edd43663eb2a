"""Sentence embeddings on ONNX Runtime, as batch-engine stages (the embedding service's
``onnx`` and ``onnx-int8`` backends, and the ONNX backend of ``LocalEmbeddingModel``).

The transformer runs as the graph :func:`~servicegrid.models.onnx_export.exported_onnx`
wrote; tokenization is the model's own ``tokenizer.json`` through the
``tokenizers`` library (Rust, no GIL during a batch), and pooling and
normalisation follow the model folder's sentence-transformers modules, so the
vectors match ``SentenceTransformer.encode`` (cosine >= 0.9999 in fp32).

Each forward worker has its own ONNX Runtime session with its share of the
cores: sessions run side by side instead of contending for one thread pool.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from servicegrid.models.embedder import (
    CHARS_PER_TOKEN_GUESS,
    Embedding,
    EmbedItem,
    normalized_embeddings,
)
from servicegrid.models.onnx_export import (
    ModelExportError,
    exported_onnx,
    pool_token_embeddings,
    read_pooling,
)
from servicegrid.models.threads import usable_cores

__all__ = ["OnnxEmbedder", "onnx_providers"]

_CHARS_PER_TOKEN_BOUND = 32

Batch = dict[str, npt.NDArray[np.int64]]


def onnx_providers(device: str) -> tuple[list[str], list[dict[str, Any]]]:
    """ONNX Runtime's execution providers and their options for ``cpu`` or ``cuda[:N]``.

    Raises :class:`ModelExportError` when CUDA is asked for and this ONNX
    Runtime build or machine has none.
    """
    if device == "cpu":
        return ["CPUExecutionProvider"], [{}]
    import onnxruntime

    if not device.startswith("cuda"):
        raise ModelExportError(f"device {device!r}: the ONNX backend runs on cpu or cuda[:N]")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise ModelExportError(
            f"device {device!r}: this onnxruntime has no CUDAExecutionProvider "
            f"(available: {', '.join(onnxruntime.get_available_providers())}); "
            "install onnxruntime-gpu"
        )
    index = int(device.partition(":")[2] or 0)
    return ["CUDAExecutionProvider"], [{"device_id": index}]


class OnnxEmbedder:
    """A sentence-transformers model exported to ONNX, as a batch-engine adapter."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str,
        cache_dir: Path,
        quantize: bool = False,
        device: str = "cpu",
        max_length: int | None = None,
        description: str = "",
        sessions: int = 1,
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.name = name
        self.device = device
        self.description = description
        self.quantize = quantize
        model_path = Path(model_path)
        self.pooling = read_pooling(model_path)
        self.folder = exported_onnx(model_path, cache_dir=cache_dir, quantize=quantize)
        self.max_length = int(max_length or self.pooling.max_length)
        providers, options = onnx_providers(device)
        threads = max(1, usable_cores() // max(1, sessions)) if device == "cpu" else 0
        self._sessions: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(max(1, sessions)):
            try:
                session = onnxruntime.InferenceSession(
                    str(self.folder / "model.onnx"),
                    sess_options=_session_options(threads),
                    providers=providers,
                    provider_options=options,
                )
            except Exception as error:  # onnxruntime raises its own untyped errors
                raise ModelExportError(
                    f"ONNX Runtime cannot load {self.folder / 'model.onnx'}: {error}"
                    " (delete that folder to export the model again)"
                ) from error
            self._sessions.put(session)
        first = self._sessions.get()
        self._inputs = [entry.name for entry in first.get_inputs()]
        self.dimension = int(first.get_outputs()[0].shape[-1])
        self._sessions.put(first)
        tokenizer_file = self.folder / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelExportError(f"{model_path} has no tokenizer.json (a fast tokenizer)")
        # two configured copies, never reconfigured afterwards, so any thread may use either
        self._batcher = Tokenizer.from_file(str(tokenizer_file))
        self._batcher.enable_truncation(self.max_length)
        pad_token = _pad_token(self.folder)
        pad_id = self._batcher.token_to_id(pad_token)
        self._batcher.enable_padding(pad_id=pad_id or 0, pad_token=pad_token)
        self._measurer = Tokenizer.from_file(str(tokenizer_file))
        self._measurer.no_padding()
        self._measurer.enable_truncation(self.max_length + 1)

    # ---- measuring -------------------------------------------------------------

    def item(self, text: str, *, normalize: bool = False) -> EmbedItem:
        """Measure ``text`` in tokens and cut it to what the model reads."""
        return self.items([text], normalize=normalize)[0]

    def items(self, texts: Sequence[str], *, normalize: bool = False) -> list[EmbedItem]:
        """:meth:`item` for many texts in one tokenizer call."""
        cuts = [text[: self.max_length * _CHARS_PER_TOKEN_BOUND] for text in texts]
        encoded = self._measurer.encode_batch(cuts)
        return [
            EmbedItem(
                cut,
                normalize,
                min(len(found.ids), self.max_length),
                len(cut) < len(text) or len(found.ids) > self.max_length,
            )
            for text, cut, found in zip(texts, cuts, encoded, strict=True)
        ]

    def estimate_tokens(self, text: str) -> int:
        """A guess at ``item(text).tokens`` from the text's length alone."""
        return min(self.max_length, len(text) // CHARS_PER_TOKEN_GUESS + 2)

    # ---- the batch-engine stages -----------------------------------------------

    def cost(self, item: EmbedItem) -> int:
        return max(item.tokens, 1)

    def preprocess(self, items: Sequence[EmbedItem]) -> Batch:
        return self._tokenize([item.text for item in items])

    def forward(self, prepared: Batch) -> npt.NDArray[np.float32]:
        session = self._sessions.get()
        try:
            (tokens,) = session.run(["token_embeddings"], prepared)
        finally:
            self._sessions.put(session)
        return pool_token_embeddings(
            np.asarray(tokens, dtype=np.float32), prepared["attention_mask"], self.pooling
        )

    def postprocess(
        self, raw: npt.NDArray[np.float32], items: Sequence[EmbedItem]
    ) -> list[Embedding]:
        return normalized_embeddings(raw, items)

    # ---- the reference path ----------------------------------------------------

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, normalize: bool = False
    ) -> npt.NDArray[np.float32]:
        """Embed ``texts`` in batches of ``batch_size``, in order (no batching engine)."""
        parts = [
            self.forward(self._tokenize(list(texts[start : start + batch_size])))
            for start in range(0, len(texts), batch_size)
        ]
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)
        if normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        return vectors

    # ---- helpers ---------------------------------------------------------------

    def _tokenize(self, texts: list[str]) -> Batch:
        cut = [text[: self.max_length * _CHARS_PER_TOKEN_BOUND] for text in texts]
        encoded = self._batcher.encode_batch(cut)
        batch: Batch = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
        }
        if "token_type_ids" in self._inputs:
            batch["token_type_ids"] = np.array([e.type_ids for e in encoded], dtype=np.int64)
        return batch

    def __repr__(self) -> str:
        variant = "int8" if self.quantize else "fp32"
        return f"OnnxEmbedder({self.name!r}, {variant}, device={self.device!r})"


def _session_options(threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    return options


def _pad_token(folder: Path) -> str:
    path = folder / "special_tokens_map.json"
    special = json.loads(path.read_text()) if path.is_file() else {}
    pad = special.get("pad_token", "[PAD]")
    return str(pad.get("content", "[PAD]") if isinstance(pad, dict) else pad)
