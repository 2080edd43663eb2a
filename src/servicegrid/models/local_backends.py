"""The four backends of :class:`~servicegrid.models.local.LocalEmbeddingModel`.

Each loader imports its library when called, so a missing library disables
only its own backend, and returns ``instances`` handles that one thread each
may use at a time. Every backend pools and normalises as the model folder's
sentence-transformers modules say (``modules.json``, ``1_Pooling``,
``2_Normalize``), so all four give the same vectors for the same folder.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from servicegrid.errors import DeviceUnavailableError
from servicegrid.models.onnx_export import exported_onnx, pool_token_embeddings, read_pooling
from servicegrid.models.threads import usable_cores

__all__ = [
    "BackendOptions",
    "EmbeddingBackend",
    "Loader",
    "ModelLoadError",
    "load_fastembed",
    "load_onnx",
    "load_sentence_transformers",
    "load_transformers",
]


class ModelLoadError(RuntimeError):
    """A backend could not load its model; the message names the backend and the reason."""

    def __init__(self, backend: str, message: str) -> None:
        self.backend = backend
        super().__init__(f"{backend} backend: {message}")


class EmbeddingBackend(Protocol):
    """One loaded model: ``encode`` runs in one thread at a time per handle."""

    @property
    def dimension(self) -> int: ...

    @property
    def max_length(self) -> int: ...

    def encode(self, texts: Sequence[str], *, batch_size: int) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """What every loader needs besides the model folder; ``device`` is "cpu" or "cuda:N"."""

    device: str = "cpu"
    max_length: int | None = None
    cache_dir: Path = Path(".servicegrid/models")
    quantize: bool = False
    instances: int = 1


Loader = Callable[[Path, BackendOptions], list[EmbeddingBackend]]


def _library(backend: str, module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(
            backend, f"the {module} library is not installed ({exc}); install servicegrid[models]"
        ) from exc


def _check_torch_device(backend: str, device: str) -> None:
    if device == "cpu":
        return
    torch = _library(backend, "torch")
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"{backend} backend: device {device!r} asked for, but no CUDA GPU is visible "
            "(torch.cuda.is_available() is False); use device='cpu'"
        )
    index, count = _cuda_index(device), int(torch.cuda.device_count())
    if index >= count:
        raise DeviceUnavailableError(
            f"{backend} backend: device {device!r} asked for, but only {count} CUDA GPU(s) "
            "are visible"
        )


def _check_onnx_device(backend: str, device: str) -> None:
    if device == "cpu":
        return
    available = _library(backend, "onnxruntime").get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise DeviceUnavailableError(
            f"{backend} backend: device {device!r} asked for, but this onnxruntime has no "
            f"CUDAExecutionProvider (available: {', '.join(available)}); install "
            "onnxruntime-gpu or use device='cpu'"
        )


def _cuda_index(device: str) -> int:
    return int(device.partition(":")[2] or 0)


def _loading(backend: str, model_dir: Path, build: Callable[[], list[Any]]) -> list[Any]:
    """``build()``, with any failure re-raised as a ModelLoadError naming ``model_dir``."""
    try:
        return build()
    except (ModelLoadError, DeviceUnavailableError):
        raise
    except Exception as exc:
        raise ModelLoadError(
            backend, f"the model in {model_dir} failed to load: {type(exc).__name__}: {exc}"
        ) from exc


# ---- sentence-transformers ---------------------------------------------------------


def load_sentence_transformers(model_dir: Path, options: BackendOptions) -> list[EmbeddingBackend]:
    """``SentenceTransformer`` instances on ``options.device``."""
    backend = "SentenceTransformers"
    _library(backend, "sentence_transformers")
    _check_torch_device(backend, options.device)
    from servicegrid.models.embedder import SentenceTransformerEmbedder

    def build() -> list[Any]:
        return [
            SentenceTransformerEmbedder(
                model_dir, name=model_dir.name, device=options.device, max_length=options.max_length
            )
            for _ in range(options.instances)
        ]

    return _loading(backend, model_dir, build)


# ---- Hugging Face transformers -----------------------------------------------------


class _TransformersEmbedder:
    """``AutoModel`` + ``AutoTokenizer``, pooled over the attention mask as the folder says."""

    def __init__(self, model_dir: Path, options: BackendOptions) -> None:
        transformers = importlib.import_module("transformers")
        self._torch = importlib.import_module("torch")
        self._pooling = read_pooling(model_dir)
        self._device = options.device
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
        self._model = transformers.AutoModel.from_pretrained(str(model_dir)).to(options.device)
        self._model.eval()
        self.max_length = int(options.max_length or self._pooling.max_length)
        self.dimension = int(self._model.config.hidden_size)

    def encode(self, texts: Sequence[str], *, batch_size: int) -> npt.NDArray[np.float32]:
        parts = [
            self._batch(list(texts[start : start + batch_size]))
            for start in range(0, len(texts), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def _batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        torch = self._torch
        features = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self._device)
        with torch.inference_mode():
            tokens = self._model(**features).last_hidden_state
        return pool_token_embeddings(
            tokens.float().cpu().numpy(), features["attention_mask"].cpu().numpy(), self._pooling
        )


def load_transformers(model_dir: Path, options: BackendOptions) -> list[EmbeddingBackend]:
    """Hugging Face ``AutoModel`` instances with mean (or the folder's) pooling."""
    backend = "Transformers"
    _library(backend, "transformers")
    _check_torch_device(backend, options.device)
    return _loading(
        backend,
        model_dir,
        lambda: [_TransformersEmbedder(model_dir, options) for _ in range(options.instances)],
    )


# ---- ONNX Runtime ------------------------------------------------------------------


def load_onnx(model_dir: Path, options: BackendOptions) -> list[EmbeddingBackend]:
    """One :class:`OnnxEmbedder` with a session per handle, exported to ``cache_dir`` once.

    The handles share the embedder: its sessions split the cores between them
    and its tokenizers are never reconfigured, so each thread runs its own
    session side by side, where separate embedders would each claim every core.
    """
    backend = "ONNX"
    _library(backend, "onnxruntime")
    _check_onnx_device(backend, options.device)

    def build() -> list[Any]:
        from servicegrid.models.onnx_embedder import OnnxEmbedder

        embedder = OnnxEmbedder(
            model_dir,
            name=model_dir.name,
            cache_dir=options.cache_dir,
            quantize=options.quantize,
            device=options.device,
            max_length=options.max_length,
            sessions=options.instances,
        )
        return [embedder] * options.instances

    return _loading(backend, model_dir, build)


# ---- FastEmbed ---------------------------------------------------------------------

# FastEmbed keeps custom models in a class-level registry that refuses a name twice
_fastembed_registry = threading.Lock()


class _FastEmbedder:
    """FastEmbed's ``TextEmbedding`` over the local ONNX export: it never reaches for a hub."""

    def __init__(self, model: Any, dimension: int, max_length: int, folder: Path) -> None:
        self._model = model
        self.dimension = dimension
        self.max_length = max_length
        self.folder = folder

    def encode(self, texts: Sequence[str], *, batch_size: int) -> npt.NDArray[np.float32]:
        vectors = list(self._model.embed(list(texts), batch_size=batch_size))
        if not vectors:
            return np.zeros((0, self.dimension), np.float32)
        return np.asarray(np.stack(vectors), dtype=np.float32)


def load_fastembed(model_dir: Path, options: BackendOptions) -> list[EmbeddingBackend]:
    """FastEmbed ``TextEmbedding`` instances given the exported folder as ``specific_model_path``.

    The folder is registered as a custom model (mean, CLS pooling; the folder's
    Normalize) under ``servicegrid/<folder>-<pooling>-<dim>``; FastEmbed then
    reads ``model.onnx`` (output ``token_embeddings``), ``tokenizer.json``,
    ``tokenizer_config.json``, ``special_tokens_map.json`` and ``config.json``
    from it and downloads nothing.
    """
    backend = "FastEmbed"
    _library(backend, "fastembed")
    _check_onnx_device(backend, options.device)

    def build() -> list[Any]:
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        pooling = read_pooling(model_dir)
        kinds = {"mean": PoolingType.MEAN, "cls": PoolingType.CLS}
        if pooling.mode not in kinds:
            raise ValueError(f"FastEmbed has no {pooling.mode!r} pooling (it has mean and cls)")
        folder = exported_onnx(model_dir, cache_dir=options.cache_dir, quantize=options.quantize)
        config = json.loads((folder / "config.json").read_text())
        dimension = int(config["hidden_size"])
        norm = "normalized" if pooling.normalize else "raw"
        name = f"servicegrid/{folder.parent.name}-{folder.name}-{pooling.mode}-{norm}-{dimension}"
        with _fastembed_registry:
            known = {entry["model"].lower() for entry in TextEmbedding.list_supported_models()}
            if name.lower() not in known:
                TextEmbedding.add_custom_model(
                    model=name,
                    pooling=kinds[pooling.mode],
                    normalization=pooling.normalize,
                    sources=ModelSource(hf=name),
                    dim=dimension,
                    model_file="model.onnx",
                    output_name="token_embeddings",
                )
        max_length = int(options.max_length or pooling.max_length)
        if options.device == "cpu":
            providers: list[Any] = ["CPUExecutionProvider"]
        else:
            providers = [("CUDAExecutionProvider", {"device_id": _cuda_index(options.device)})]
        threads = max(1, usable_cores() // options.instances)
        handles = []
        for _ in range(options.instances):
            model = TextEmbedding(
                model_name=name,
                cache_dir=str(options.cache_dir / "fastembed"),
                threads=threads,
                providers=providers,
                cuda=False,
                specific_model_path=str(folder),
                local_files_only=True,
            )
            _truncate(model, max_length)
            handles.append(_FastEmbedder(model, dimension, max_length, folder))
        return handles

    return _loading(backend, model_dir, build)


def _truncate(model: Any, max_length: int) -> None:
    """Cut at the sentence-transformers length, not ``tokenizer_config``'s ``model_max_length``.

    FastEmbed truncates at the tokenizer config's limit (512 for MiniLM), where
    sentence-transformers reads at most ``max_seq_length`` (256) tokens.
    """
    tokenizer = model.model.tokenizer
    truncation = tokenizer.truncation or {}
    tokenizer.enable_truncation(
        max_length=max_length,
        stride=truncation.get("stride", 0),
        strategy=truncation.get("strategy", "longest_first"),
        direction=truncation.get("direction", "right"),
    )
