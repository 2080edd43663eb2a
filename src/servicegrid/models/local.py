"""Local embeddings (seed 004): a model pool behind ``load`` / ``embed`` / ``unload``.

.. code-block:: python

    model = LocalEmbeddingModel(LocalEmbeddingConfig(backend=ModelBackend.ONNX))
    await model.load()
    vectors = await model.embed(["text1", "text2"])  # numpy float32, shape (2, 384)
    await model.unload()

Four backends run the same model folder: sentence-transformers, Hugging Face
transformers (``AutoModel`` with mean pooling), ONNX Runtime (the folder
exported to ONNX once, into ``cache_dir``) and FastEmbed (given that export as
a local model). Model names resolve offline through
:func:`~servicegrid.models.packaged.resolve_model_path`; nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from servicegrid._validate import check_count
from servicegrid.errors import ModelNotLoaded, ValidationError
from servicegrid.models.local_backends import (
    BackendOptions,
    EmbeddingBackend,
    Loader,
    ModelLoadError,
    load_fastembed,
    load_onnx,
    load_sentence_transformers,
    load_transformers,
)
from servicegrid.models.packaged import MINILM_NAME, resolve_model_path

__all__ = [
    "LocalEmbeddingConfig",
    "LocalEmbeddingModel",
    "ModelBackend",
    "ModelLoadError",
]

_DEVICE = re.compile(r"cpu|cuda(?::\d+)?")


class ModelBackend(enum.StrEnum):
    """The library that runs the model."""

    SENTENCE_TRANSFORMERS = "sentence_transformers"
    TRANSFORMERS = "transformers"
    ONNX = "onnx"
    FASTEMBED = "fastembed"


_LOADERS: dict[ModelBackend, Loader] = {
    ModelBackend.SENTENCE_TRANSFORMERS: load_sentence_transformers,
    ModelBackend.TRANSFORMERS: load_transformers,
    ModelBackend.ONNX: load_onnx,
    ModelBackend.FASTEMBED: load_fastembed,
}


@dataclass(frozen=True, slots=True)
class LocalEmbeddingConfig:
    """How to run a local embedding model.

    ``backend`` takes a :class:`ModelBackend` or its value (``"onnx"``);
    ``device`` is ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (checked at load);
    ``max_length`` in tokens, None for the model's own (``max_seq_length``);
    ``pool_size`` loaded instances serve that many concurrent ``embed`` calls;
    ``cache_dir`` holds ONNX exports (ONNX and FastEmbed backends);
    ``quantize`` runs the int8 export (ONNX and FastEmbed backends only).
    Raises ValueError naming the field for any value out of range.
    """

    model_name: str = MINILM_NAME
    backend: ModelBackend = ModelBackend.SENTENCE_TRANSFORMERS
    device: str = "cpu"
    batch_size: int = 32
    normalize_embeddings: bool = True
    max_length: int | None = None
    pool_size: int = 1
    cache_dir: Path = Path(".servicegrid/models")
    quantize: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model_name, str) or not self.model_name.strip():
            raise _invalid("model_name", "a non-empty string", self.model_name)
        object.__setattr__(self, "backend", _backend(self.backend))
        device = self.device.strip().lower() if isinstance(self.device, str) else ""
        if not _DEVICE.fullmatch(device):
            raise _invalid("device", "'cpu', 'cuda' or 'cuda:N'", self.device)
        object.__setattr__(self, "device", device)
        check_count("LocalEmbeddingConfig.batch_size", self.batch_size)
        check_count("LocalEmbeddingConfig.pool_size", self.pool_size)
        if self.max_length is not None:
            check_count("LocalEmbeddingConfig.max_length", self.max_length)
        for name in ("normalize_embeddings", "quantize"):
            if not isinstance(getattr(self, name), bool):
                raise _invalid(name, "True or False", getattr(self, name))
        if not isinstance(self.cache_dir, str | Path):
            raise _invalid("cache_dir", "a path", self.cache_dir)
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())
        if self.quantize and self.backend not in (ModelBackend.ONNX, ModelBackend.FASTEMBED):
            raise ValueError(
                "LocalEmbeddingConfig.quantize runs the int8 ONNX export: it needs backend "
                f"'onnx' or 'fastembed', not {self.backend.value!r}"
            )


def _invalid(field: str, expected: str, value: object) -> ValueError:
    return ValueError(f"LocalEmbeddingConfig.{field} must be {expected}, got {value!r}")


def _backend(value: object) -> ModelBackend:
    if isinstance(value, ModelBackend):
        return value
    if isinstance(value, str):
        try:
            return ModelBackend(value.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(repr(member.value) for member in ModelBackend)
    raise _invalid("backend", f"one of {choices}", value)


class LocalEmbeddingModel:
    """A pool of ``config.pool_size`` loaded models; each ``embed`` call borrows one.

    Concurrent ``embed`` calls run side by side in threads, one per instance;
    more wait for a free one. ``embed`` returns a numpy float32 array of shape
    ``(len(texts), dimension)``, rows in the order of ``texts``, each of unit
    length when ``normalize_embeddings`` is set; an empty list gives shape
    ``(0, dimension)``.
    """

    def __init__(self, config: LocalEmbeddingConfig | None = None) -> None:
        self.config = config if config is not None else LocalEmbeddingConfig()
        self._lock = asyncio.Lock()
        self._idle: asyncio.Queue[EmbeddingBackend] | None = None
        self._instances: list[EmbeddingBackend] = []
        self._model_path: Path | None = None
        self._dimension: int | None = None
        self._max_length: int | None = None

    @property
    def loaded(self) -> bool:
        return self._idle is not None

    async def load(self) -> None:
        """Resolve the model folder and load ``pool_size`` instances in a worker thread.

        Does nothing when already loaded. Raises FileNotFoundError for a model
        that is neither packaged nor a folder, DeviceUnavailableError when the
        device asked for is missing, and ModelLoadError (a RuntimeError) naming
        the backend and the reason when the library is missing or the model fails.
        """
        async with self._lock:
            if self._idle is not None:
                return
            config = self.config
            path = self._resolve()
            options = BackendOptions(
                device=config.device,
                max_length=config.max_length,
                cache_dir=config.cache_dir,
                quantize=config.quantize,
                instances=config.pool_size,
            )
            instances = await asyncio.to_thread(_LOADERS[config.backend], path, options)
            idle: asyncio.Queue[EmbeddingBackend] = asyncio.Queue()
            for instance in instances:
                idle.put_nowait(instance)
            self._instances, self._model_path = instances, path
            self._dimension = instances[0].dimension
            self._max_length = instances[0].max_length
            self._idle = idle

    def _resolve(self) -> Path:
        try:
            return resolve_model_path(self.config.model_name)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{self.config.backend.value} backend: {exc}") from exc

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` in batches of ``batch_size`` on one free instance.

        Raises ModelNotLoaded before ``load()`` (or after ``unload()``), and
        ValidationError naming ``texts`` or ``texts[i]`` for anything but a list of strings.
        """
        idle = self._idle
        if idle is None:
            raise ModelNotLoaded(
                f"local embedding model {self.config.model_name!r} is not loaded: "
                "await load() first"
            )
        items = _checked_texts(texts)
        if not items:
            return np.zeros((0, self._dimension or 0), np.float32)
        instance = await idle.get()
        loop = asyncio.get_running_loop()

        def run() -> npt.NDArray[np.float32]:
            try:
                return instance.encode(items, batch_size=self.config.batch_size)
            finally:
                # handed back when the thread is done, even if the caller was cancelled,
                # so no two threads ever share an instance
                _give_back(loop, idle, instance)

        vectors = np.asarray(await asyncio.to_thread(run), dtype=np.float32)
        if self.config.normalize_embeddings:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return vectors

    def get_info(self) -> dict[str, Any]:
        """What runs; ``embedding_dimension`` is None until first loaded."""
        return {
            "model_name": self.config.model_name,
            "backend": self.config.backend.value,
            "device": self.config.device,
            "embedding_dimension": self._dimension,
            "max_length": self._max_length or self.config.max_length,
            "batch_size": self.config.batch_size,
            "normalize_embeddings": self.config.normalize_embeddings,
            "loaded": self.loaded,
            "pool_size": self.config.pool_size,
            "model_path": str(self._model_path) if self._model_path is not None else None,
            "quantize": self.config.quantize,
        }

    async def unload(self) -> None:
        """Refuse new calls, wait for those running, then free the instances (and GPU memory)."""
        async with self._lock:
            idle, self._idle = self._idle, None
            if idle is None:
                return
            for _ in range(len(self._instances)):
                await idle.get()
            self._instances = []
            await asyncio.to_thread(_release, self.config.device)

    async def __aenter__(self) -> LocalEmbeddingModel:
        await self.load()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.unload()

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "unloaded"
        return (
            f"LocalEmbeddingModel({self.config.model_name!r}, {self.config.backend.value}, "
            f"device={self.config.device!r}, pool_size={self.config.pool_size}, {state})"
        )


def _checked_texts(texts: object) -> list[str]:
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise ValidationError.for_field(
            "texts", f"must be a list of strings, got {type(texts).__name__}"
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValidationError.for_field(
                f"texts[{index}]", f"must be a string, got {type(text).__name__}"
            )
    return list(texts)


def _give_back(
    loop: asyncio.AbstractEventLoop,
    idle: asyncio.Queue[EmbeddingBackend],
    instance: EmbeddingBackend,
) -> None:
    # a closed loop has nobody left to borrow it
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(idle.put_nowait, instance)


def _release(device: str) -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if device.startswith("cuda") and torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
