"""One entry point that loads a sentence embedder on the runtime the settings name."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeAlias

from servicegrid.models.embedder import SentenceTransformerEmbedder
from servicegrid.models.onnx_embedder import OnnxEmbedder

__all__ = ["RUNTIMES", "TextEmbedder", "describe_runtime", "load_embedder", "runtime_for"]

Runtime: TypeAlias = Literal["torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx", "onnx-int8")


def runtime_for(configured: str, device: str) -> str:
    """The runtime ``auto`` stands for on ``device``: ONNX Runtime fp32 on a CPU, where it
    was measured faster than torch (docs/benchmarks.md), and torch on a GPU, where the
    ONNX Runtime installed by default has no CUDA provider. Any other value is kept."""
    if configured != "auto":
        return configured
    return "onnx" if device == "cpu" else "torch"


TextEmbedder: TypeAlias = SentenceTransformerEmbedder | OnnxEmbedder
"""Either embedder: the same measuring calls and batch-engine stages."""


def load_embedder(
    path: Path,
    *,
    name: str,
    runtime: str,
    device: str,
    cache_dir: Path,
    sessions: int = 1,
    description: str = "",
) -> TextEmbedder:
    """Load the model in ``path`` on ``runtime`` (torch, onnx or onnx-int8); blocking.

    The ONNX runtimes export the model on first use into ``cache_dir`` and give
    each of ``sessions`` forward workers its own session.
    Raises ValueError for an unknown runtime.
    """
    if runtime == "torch":
        return SentenceTransformerEmbedder(path, name=name, device=device, description=description)
    if runtime in ("onnx", "onnx-int8"):
        return OnnxEmbedder(
            path,
            name=name,
            device=device,
            cache_dir=cache_dir,
            quantize=runtime == "onnx-int8",
            sessions=sessions,
            description=description,
        )
    raise ValueError(f"unknown runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")


def describe_runtime(runtime: str) -> str:
    """How a runtime is named in a model's description."""
    return {
        "torch": "sentence-transformers on torch",
        "onnx": "ONNX Runtime (fp32)",
        "onnx-int8": "ONNX Runtime (dynamic int8, cosine about 0.99 with fp32)",
    }.get(runtime, runtime)
