"""LocalEmbeddingModel's four backends on the packaged MiniLM, against sentence-transformers."""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio

from servicegrid.errors import DeviceUnavailableError, ModelNotLoaded, ValidationError
from servicegrid.models import MINILM_NAME, SentenceTransformerEmbedder, resolve_model_path
from servicegrid.models.local import (
    LocalEmbeddingConfig,
    LocalEmbeddingModel,
    ModelBackend,
    ModelLoadError,
)
from servicegrid.models.onnx_export import exported_onnx

# the tests of the models loaded once per module share the module's event loop
module_loop = pytest.mark.asyncio(loop_scope="module")

TEXTS = [
    "The cat sat on the mat.",
    "Quantum chromodynamics describes the strong interaction.",
    "",
    "Ünïcödé tèxt ✓ 日本語 with emoji 🚀",
    # longer than the model's 256 tokens: every backend must cut where sentence-transformers does
    "a long sentence about embeddings " * 120,
]

# (backend, quantize, batch_size, the least cosine with SentenceTransformer.encode)
BACKENDS = {
    "sentence_transformers": (ModelBackend.SENTENCE_TRANSFORMERS, False, 32, 0.999),
    "transformers": (ModelBackend.TRANSFORMERS, False, 2, 0.999),
    "onnx": (ModelBackend.ONNX, False, 3, 0.9999),
    # weights int8 per channel, activations quantized per batch: close, not equal
    "onnx-int8": (ModelBackend.ONNX, True, 32, 0.95),
    "fastembed": (ModelBackend.FASTEMBED, False, 2, 0.999),
}


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / norms, dtype=np.float64)


@pytest.fixture(scope="module")
def reference(minilm: SentenceTransformerEmbedder) -> npt.NDArray[np.float32]:
    """``SentenceTransformer(packaged path).encode(TEXTS)``."""
    return minilm.encode(TEXTS)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module's ONNX exports go: exported once, shared by ONNX and FastEmbed."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def exported(cache_dir: Path) -> Path:
    """The fp32 ONNX export of the packaged model in ``cache_dir``."""
    return exported_onnx(resolve_model_path(MINILM_NAME), cache_dir=cache_dir)


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=list(BACKENDS))
async def loaded(
    request: pytest.FixtureRequest, cache_dir: Path
) -> AsyncIterator[tuple[str, LocalEmbeddingModel]]:
    """Each backend loaded once, two instances in its pool."""
    backend, quantize, batch_size, _ = BACKENDS[request.param]
    model = LocalEmbeddingModel(
        LocalEmbeddingConfig(
            backend=backend,
            quantize=quantize,
            batch_size=batch_size,
            pool_size=2,
            cache_dir=cache_dir,
        )
    )
    await model.load()
    yield request.param, model
    await model.unload()


# ---- every backend ---------------------------------------------------------------------


@module_loop
async def test_backend_matches_sentence_transformers(
    loaded: tuple[str, LocalEmbeddingModel],
    reference: npt.NDArray[np.float32],
    record_property: Any,
) -> None:
    name, model = loaded
    vectors = await model.embed(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    found = cosines(vectors, reference)
    record_property("cosines", [round(float(value), 6) for value in found])
    print(f"{name}: cosine with SentenceTransformer.encode min {found.min():.8f}", end="")
    print(f", mean {found.mean():.8f}")
    least = BACKENDS[name][3]
    assert found.min() >= least, found
    if name == "onnx-int8":
        assert found.mean() >= 0.98, found


@module_loop
async def test_info_describes_the_loaded_model(loaded: tuple[str, LocalEmbeddingModel]) -> None:
    name, model = loaded
    info = model.get_info()
    assert info["embedding_dimension"] == 384
    assert info["max_length"] == 256
    assert info["backend"] == BACKENDS[name][0].value
    assert info["device"] == "cpu"
    assert info["loaded"] is True
    assert info["pool_size"] == 2
    assert info["model_name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["model_path"] == str(resolve_model_path(MINILM_NAME))


@module_loop
async def test_concurrent_calls_share_the_pool(
    loaded: tuple[str, LocalEmbeddingModel], reference: npt.NDArray[np.float32]
) -> None:
    name, model = loaded
    calls = [[TEXTS[index], TEXTS[(index + 1) % len(TEXTS)]] for index in range(len(TEXTS))]
    answers = await asyncio.gather(*(model.embed(texts) for texts in calls))
    for index, vectors in enumerate(answers):
        expected = reference[[index, (index + 1) % len(TEXTS)]]
        assert cosines(vectors, expected).min() >= BACKENDS[name][3]


@module_loop
async def test_input_is_checked(loaded: tuple[str, LocalEmbeddingModel]) -> None:
    _, model = loaded
    empty = await model.embed([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32
    with pytest.raises(ValidationError) as caught:
        await model.embed("one text, not a list")  # type: ignore[arg-type]
    assert caught.value.validation_errors[0]["field"] == "texts"
    with pytest.raises(ValidationError) as caught:
        await model.embed(["fine", 3])  # type: ignore[list-item]
    assert caught.value.validation_errors[0]["field"] == "texts[1]"
    assert "texts[1]: must be a string, got int" in str(caught.value)


# ---- the pool and the lifecycle --------------------------------------------------------


async def test_pool_instances_run_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two calls meet at a barrier inside ``encode``: only two threads at once get past it."""
    barrier = threading.Barrier(2, timeout=60)
    used: set[int] = set()
    encode = SentenceTransformerEmbedder.encode

    def meeting(self: SentenceTransformerEmbedder, texts: Any, **kwargs: Any) -> Any:
        used.add(id(self))
        barrier.wait()
        return encode(self, texts, **kwargs)

    monkeypatch.setattr(SentenceTransformerEmbedder, "encode", meeting)
    async with LocalEmbeddingModel(LocalEmbeddingConfig(pool_size=2)) as model:
        first, second = await asyncio.gather(model.embed(TEXTS[:2]), model.embed(TEXTS[2:4]))
    assert len(used) == 2
    assert first.shape == second.shape == (2, 384)


async def test_unload_waits_for_calls_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    encode = SentenceTransformerEmbedder.encode

    def held(self: SentenceTransformerEmbedder, texts: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(60)
        return encode(self, texts, **kwargs)

    monkeypatch.setattr(SentenceTransformerEmbedder, "encode", held)
    model = LocalEmbeddingModel()
    await model.load()
    call = asyncio.create_task(model.embed(["in flight"]))
    await asyncio.to_thread(entered.wait, 60)
    unloading = asyncio.create_task(model.unload())
    await asyncio.sleep(0)
    assert not model.loaded
    with pytest.raises(ModelNotLoaded):
        await model.embed(["refused while unloading"])
    assert not unloading.done()
    release.set()
    assert (await call).shape == (1, 384)
    await unloading
    assert model.get_info()["loaded"] is False


async def test_embed_before_load_is_refused() -> None:
    model = LocalEmbeddingModel(LocalEmbeddingConfig(backend="onnx"))
    with pytest.raises(ModelNotLoaded, match="not loaded: await load"):
        await model.embed(["text"])
    info = model.get_info()
    assert info["loaded"] is False
    assert info["embedding_dimension"] is None
    await model.unload()  # nothing loaded: nothing to do


# ---- configuration ---------------------------------------------------------------------


def test_backend_is_taken_as_enum_or_value() -> None:
    assert LocalEmbeddingConfig(backend="fastembed").backend is ModelBackend.FASTEMBED
    assert LocalEmbeddingConfig(backend=ModelBackend.ONNX).backend is ModelBackend.ONNX
    config = LocalEmbeddingConfig(device="CUDA:1", cache_dir="exports")  # type: ignore[arg-type]
    assert config.device == "cuda:1"
    assert config.cache_dir == Path("exports")
    assert LocalEmbeddingConfig().cache_dir == Path(".servicegrid/models")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"backend": "tensorflow"}, "LocalEmbeddingConfig.backend"),
        ({"batch_size": 0}, "LocalEmbeddingConfig.batch_size"),
        ({"pool_size": 0}, "LocalEmbeddingConfig.pool_size"),
        ({"max_length": 0}, "LocalEmbeddingConfig.max_length"),
        ({"device": "tpu"}, "LocalEmbeddingConfig.device"),
        ({"model_name": ""}, "LocalEmbeddingConfig.model_name"),
        ({"normalize_embeddings": "yes"}, "LocalEmbeddingConfig.normalize_embeddings"),
        ({"quantize": True}, "LocalEmbeddingConfig.quantize"),
    ],
)
def test_bad_configuration_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LocalEmbeddingConfig(**changes)


# ---- load failures ---------------------------------------------------------------------


async def test_a_missing_model_names_where_it_looked(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    model = LocalEmbeddingModel(LocalEmbeddingConfig(model_name=str(missing)))
    with pytest.raises(FileNotFoundError, match="sentence_transformers backend") as caught:
        await model.load()
    assert str(missing) in str(caught.value)
    assert not model.loaded


async def test_transformers_on_an_empty_folder_says_why(tmp_path: Path) -> None:
    model = LocalEmbeddingModel(
        LocalEmbeddingConfig(model_name=str(tmp_path), backend="transformers")
    )
    with pytest.raises(ModelLoadError, match=r"^Transformers backend: ") as caught:
        await model.load()
    assert f"the model in {tmp_path} failed to load" in str(caught.value)
    assert caught.value.backend == "Transformers"
    assert caught.value.__cause__ is not None


async def test_onnx_with_a_corrupt_export_says_why(
    cache_dir: Path, exported: Path, tmp_path: Path
) -> None:
    """A copy of the module's export whose model.onnx is garbage: reused, and refused."""
    broken = tmp_path / "cache"
    shutil.copytree(cache_dir, broken)
    exports = list(broken.glob("*/fp32/model.onnx"))
    assert exports, "the module's ONNX export should be in its cache"
    for export in exports:
        export.write_bytes(b"this is not an ONNX graph")
    model = LocalEmbeddingModel(LocalEmbeddingConfig(backend="onnx", cache_dir=broken))
    with pytest.raises(ModelLoadError, match=r"^ONNX backend: the model in .* failed to load: "):
        await model.load()
    assert not model.loaded


async def test_a_missing_library_disables_only_its_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fastembed", None)
    model = LocalEmbeddingModel(LocalEmbeddingConfig(backend="fastembed"))
    with pytest.raises(ModelLoadError, match=r"^FastEmbed backend: the fastembed library is not"):
        await model.load()


@pytest.mark.parametrize("backend", ["sentence_transformers", "transformers", "onnx", "fastembed"])
async def test_cuda_asked_for_and_missing_fails_clearly(backend: str) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here")
    model = LocalEmbeddingModel(LocalEmbeddingConfig(backend=backend, device="cuda"))
    with pytest.raises(DeviceUnavailableError, match="device 'cuda' asked for, but"):
        await model.load()


# ---- FastEmbed never reaches for a hub -------------------------------------------------


async def test_fastembed_loads_the_local_export_without_a_hub(
    cache_dir: Path,
    exported: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference: npt.NDArray[np.float32],
) -> None:
    from fastembed.common.model_management import ModelManagement

    def no_download(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"FastEmbed tried to download: {args} {kwargs}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(ModelManagement, "download_files_from_huggingface", no_download)
    monkeypatch.setattr(ModelManagement, "download_file_from_gcs", no_download)
    model = LocalEmbeddingModel(LocalEmbeddingConfig(backend="fastembed", cache_dir=cache_dir))
    async with model:
        vectors = await model.embed(TEXTS)
    assert cosines(vectors, reference).min() >= 0.999
    fastembed_cache = cache_dir / "fastembed"
    assert fastembed_cache.is_dir()
    assert list(fastembed_cache.iterdir()) == [], "FastEmbed wrote into its download cache"
