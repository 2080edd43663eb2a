"""Export a sentence-transformers folder to ONNX once, and keep it for reuse.

The exported graph is the transformer alone (inputs ``input_ids``,
``attention_mask``, ``token_type_ids``; output ``token_embeddings``, the last
hidden state): pooling and normalisation, which the model folder's
sentence-transformers modules describe, run after it in numpy. The folder it
is written to also holds the tokenizer and configuration files, so FastEmbed
and ONNX Runtime both load it with nothing from a hub.

Each export lands in ``cache_dir/<folder name>-<fingerprint>/<variant>``; the
fingerprint covers the weights' sizes and times and the exporter's version, so
a changed model is exported again and an unchanged one never is. The export is
written to a temporary folder and renamed into place, so a crash halfway leaves
nothing that looks finished, and two processes exporting at once both end
with a complete folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "EXPORT_VERSION",
    "ModelExportError",
    "Pooling",
    "exported_onnx",
    "pool_token_embeddings",
    "read_pooling",
]

EXPORT_VERSION = "3"
"""Part of every export's fingerprint: raise it when the exported graph changes."""

_MODEL_FILE = "model.onnx"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_COPIED = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)
_OPSET = 17

_log = logging.getLogger("servicegrid.models.onnx")


class ModelExportError(RuntimeError):
    """A model folder that cannot be exported to ONNX; the message names the reason."""


@dataclass(frozen=True, slots=True)
class Pooling:
    """How token embeddings become one sentence embedding, as the model folder says."""

    mode: str = "mean"
    normalize: bool = False
    max_length: int = 512


def pool_token_embeddings(
    tokens: npt.NDArray[np.float32], mask: npt.NDArray[np.int64], pooling: Pooling
) -> npt.NDArray[np.float32]:
    """One vector per row of ``tokens`` (batch, sequence, dim), pooled over the tokens
    ``mask`` keeps and normalised as ``pooling`` says."""
    if pooling.mode == "cls":
        pooled = tokens[:, 0]
    elif pooling.mode == "max":
        pooled = np.where(mask[..., None] > 0, tokens, -1e9).max(axis=1)
    else:
        weights = mask[..., None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    if pooling.normalize:
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.maximum(norms, 1e-12)
    return pooled.astype(np.float32, copy=False)


def read_pooling(model_dir: Path) -> Pooling:
    """The pooling mode, the Normalize module and the maximum length of a model folder.

    A plain transformers folder (no ``modules.json``) is mean-pooled, as
    sentence-transformers does when it loads one. Models with modules after
    pooling that change the vector (Dense layers) cannot be served from the
    transformer graph alone and are refused.
    """
    config = _json(model_dir / "sentence_bert_config.json")
    max_length = int(config.get("max_seq_length") or _model_max_length(model_dir))
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return Pooling("mean", False, max_length)
    mode, normalize = "mean", False
    for module in json.loads(modules_file.read_text()):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            mode = _pooling_mode(_json(model_dir / module.get("path", "") / "config.json"))
        elif kind == "Normalize":
            normalize = True
        elif kind != "Transformer":
            raise ModelExportError(
                f"{model_dir}: module {kind!r} is not supported by the ONNX backend "
                "(supported: Transformer, Pooling, Normalize)"
            )
    return Pooling(mode, normalize, max_length)


def exported_onnx(model_dir: Path, *, cache_dir: Path, quantize: bool = False) -> Path:
    """The folder holding ``model.onnx`` for ``model_dir``, exporting it on first use.

    ``quantize`` gives the dynamically quantized int8 variant (weights int8,
    activations quantized per batch), made from the fp32 export.
    Raises :class:`ModelExportError` naming the reason when the folder cannot
    be exported.
    """
    model_dir = Path(model_dir).resolve()
    if not (model_dir / "config.json").is_file():
        raise ModelExportError(f"{model_dir} has no config.json: not a transformers model folder")
    read_pooling(model_dir)
    root = Path(cache_dir) / f"{model_dir.name}-{_fingerprint(model_dir)}"
    fp32 = root / "fp32"
    if not (fp32 / _MODEL_FILE).is_file():
        _log.info("exporting %s to ONNX in %s (once)", model_dir, fp32)
        _publish(fp32, lambda staging: _export(model_dir, staging))
    if not quantize:
        return fp32
    int8 = root / "int8"
    if not (int8 / _MODEL_FILE).is_file():
        _log.info("quantizing %s to int8 in %s (once)", fp32, int8)
        _publish(int8, lambda staging: _quantize(fp32, staging))
    return int8


def _publish(target: Path, write: Any) -> None:
    """Write into a staging folder next to ``target``, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging)
        try:
            os.rename(staging, target)
        except OSError:
            # another process finished the same export first: its copy is as good
            if not (target / _MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export(model_dir: Path, staging: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        # the classic attention graph, which ONNX Runtime's optimisers know; on CPU it runs
        # as fast as the SDPA one once the session has optimised it at load (MiniLM)
        model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    except (OSError, ValueError) as error:
        raise ModelExportError(f"{model_dir}: cannot load the model to export: {error}") from error
    sample = tokenizer(["a sentence to trace", "another"], padding=True, return_tensors="pt")
    names = [name for name in _INPUTS if name in sample]
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "token_embeddings"]}
    with torch.inference_mode(), warnings.catch_warnings():
        # the tracer's notes on constant shapes hold for a fixed-architecture encoder
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _last_hidden_state(model, names),
            tuple(sample[name] for name in names),
            str(staging / _MODEL_FILE),
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )
    for name in _COPIED:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, staging / name)
    for pooling in model_dir.glob("*_Pooling"):
        shutil.copytree(pooling, staging / pooling.name)


def _last_hidden_state(model: Any, names: list[str]) -> Any:
    """The transformer with positional inputs, returning only its last hidden state."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.model(
                **dict(zip(names, inputs, strict=True))
            ).last_hidden_state
            return hidden

    return LastHiddenState()


def _quantize(fp32: Path, staging: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32 / _MODEL_FILE),
        str(staging / _MODEL_FILE),
        weight_type=QuantType.QInt8,
        # one scale per output channel: cosine 0.99 with fp32 on MiniLM, against 0.95 per tensor
        per_channel=True,
        # the fused attention and layer-norm nodes are outside shape inference's domain
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    for entry in fp32.iterdir():
        if entry.name == _MODEL_FILE:
            continue
        if entry.is_dir():
            shutil.copytree(entry, staging / entry.name)
        else:
            shutil.copy2(entry, staging / entry.name)


def _fingerprint(model_dir: Path) -> str:
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for entry in sorted(model_dir.rglob("*")):
        if entry.is_file():
            stat = entry.stat()
            digest.update(
                f"{entry.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode()
            )
    return digest.hexdigest()[:12]


def _pooling_mode(config: dict[str, Any]) -> str:
    if isinstance(config.get("pooling_mode"), str):
        config = {f"pooling_mode_{config['pooling_mode']}": True}
    chosen = [key for key, value in config.items() if key.startswith("pooling_mode_") and value]
    modes = {f"pooling_mode_{name}": name for name in ("mean", "cls", "max")}
    modes |= {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
    modes["pooling_mode_max_tokens"] = "max"
    if len(chosen) != 1 or chosen[0] not in modes:
        raise ModelExportError(
            f"pooling {sorted(chosen)} is not supported by the ONNX backend (one of mean, cls, max)"
        )
    return modes[chosen[0]]


def _model_max_length(model_dir: Path) -> int:
    tokenizer = _json(model_dir / "tokenizer_config.json").get("model_max_length")
    positions = _json(model_dir / "config.json").get("max_position_embeddings")
    candidates = [int(v) for v in (tokenizer, positions) if isinstance(v, int) and v < 100_000]
    return min(candidates) if candidates else 512


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    value = json.loads(path.read_text())
    return value if isinstance(value, dict) else {}
