"""The ONNX Runtime embedder against sentence-transformers on the same packaged MiniLM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the models extra (onnxruntime) is not installed")

from servicegrid.models import (
    MINILM_NAME,
    SentenceTransformerEmbedder,
    onnx_export,
    resolve_model_path,
)
from servicegrid.models.embedder import EmbedItem
from servicegrid.models.embedders import load_embedder
from servicegrid.models.onnx_embedder import OnnxEmbedder, onnx_providers
from servicegrid.models.onnx_export import ModelExportError, exported_onnx, read_pooling
from servicegrid.settings import load_settings

CACHE = load_settings().model_cache_dir
TEXTS = [
    "This is a test document",
    "Metformin is commonly used to treat type 2 diabetes",
    "",
    "a",
    "ÜñÎçødé text with emoji 🙂 and 中文",
    "word " * 600,  # longer than the model's 256 tokens: truncated alike
    *[f"Clinical guideline number {i} " * (1 + i % 9) for i in range(40)],
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def fp32() -> OnnxEmbedder:
    return OnnxEmbedder(resolve_model_path(MINILM_NAME), name=MINILM_NAME, cache_dir=CACHE)


@pytest.fixture(scope="module")
def int8() -> OnnxEmbedder:
    path = resolve_model_path(MINILM_NAME)
    return OnnxEmbedder(path, name=MINILM_NAME, cache_dir=CACHE, quantize=True, sessions=2)


def test_fp32_matches_sentence_transformers(
    fp32: OnnxEmbedder, minilm: SentenceTransformerEmbedder
) -> None:
    reference = minilm.encode(TEXTS)
    assert fp32.dimension == 384
    assert fp32.max_length == minilm.max_length
    assert cosines(fp32.encode(TEXTS, batch_size=7), reference).min() >= 0.9999


def test_int8_stays_close_to_fp32(int8: OnnxEmbedder, minilm: SentenceTransformerEmbedder) -> None:
    found = cosines(int8.encode(TEXTS), minilm.encode(TEXTS))
    assert found.min() >= 0.97, found.min()
    assert int8.folder.name == "int8"


def test_engine_stages_give_the_reference_vectors(
    fp32: OnnxEmbedder, minilm: SentenceTransformerEmbedder
) -> None:
    items = fp32.items(TEXTS, normalize=True)
    results = fp32.postprocess(fp32.forward(fp32.preprocess(items)), items)
    reference = minilm.encode(TEXTS, normalize=True)
    values = np.stack([result.values for result in results])
    assert cosines(values, reference).min() >= 0.9999
    assert all(result.norm == pytest.approx(1.0) for result in results if result.norm)


def test_measuring_agrees_with_the_torch_embedder(
    fp32: OnnxEmbedder, minilm: SentenceTransformerEmbedder
) -> None:
    ours = fp32.items(TEXTS)
    theirs = minilm.items(TEXTS)
    assert [(i.tokens, i.truncated) for i in ours] == [(i.tokens, i.truncated) for i in theirs]
    assert ours[5].truncated
    assert ours[5].tokens == fp32.max_length


def test_the_export_is_made_once_and_reused(
    fp32: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_export(*_: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "_export", must_not_export)
    again = exported_onnx(resolve_model_path(MINILM_NAME), cache_dir=CACHE)
    assert again == fp32.folder
    assert {"model.onnx", "tokenizer.json", "config.json"} <= {p.name for p in again.iterdir()}


def test_an_export_into_a_fresh_cache_lands_whole(tmp_path: Path) -> None:
    folder = exported_onnx(resolve_model_path(MINILM_NAME), cache_dir=tmp_path)
    assert (folder / "model.onnx").is_file()
    assert (folder / "1_Pooling").is_dir()
    assert [p.name for p in folder.parent.iterdir()] == ["fp32"]  # no staging folder left


def test_the_runtime_is_chosen_by_name(fp32: OnnxEmbedder) -> None:
    path = resolve_model_path(MINILM_NAME)
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        load_embedder(path, name="m", runtime="tensorrt", device="cpu", cache_dir=CACHE)
    loaded = load_embedder(path, name="m", runtime="onnx", device="cpu", cache_dir=CACHE)
    assert isinstance(loaded, OnnxEmbedder)
    assert loaded.folder == fp32.folder


def test_a_folder_that_is_not_a_model_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelExportError, match=r"no config\.json"):
        exported_onnx(tmp_path, cache_dir=tmp_path / "cache")


def test_modules_the_graph_cannot_hold_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dense"
    shutil.copytree(resolve_model_path(MINILM_NAME), folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelExportError, match="'Dense' is not supported"):
        read_pooling(folder)


def test_a_corrupt_export_names_the_file_and_the_remedy(tmp_path: Path) -> None:
    source = resolve_model_path(MINILM_NAME)
    folder = exported_onnx(source, cache_dir=tmp_path)
    (folder / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelExportError, match=r"cannot load .*model\.onnx.*delete that folder"):
        OnnxEmbedder(source, name="m", cache_dir=tmp_path)


def test_cuda_without_a_cuda_runtime_is_refused() -> None:
    with pytest.raises(ModelExportError, match=r"no CUDAExecutionProvider|cpu or cuda"):
        onnx_providers("cuda:0")
    with pytest.raises(ModelExportError, match="cpu or cuda"):
        onnx_providers("tpu")


def test_empty_input_gives_an_empty_matrix(fp32: OnnxEmbedder) -> None:
    assert fp32.encode([]).shape == (0, 384)
    assert fp32.items([]) == []
    assert fp32.cost(EmbedItem("x", tokens=0)) == 1
