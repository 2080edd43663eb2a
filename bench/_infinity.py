"""Infinity (``infinity-emb``) as a comparison server, in a virtual environment of its own.

Infinity pins sentence-transformers < 4, transformers < 5 and numpy < 2, so it
cannot share servicegrid's environment; its two CPU engines cannot share one
either (see REQUIREMENTS). The first run builds ``.servicegrid/bench-venvs/infinity``
(the torch engine, with BetterTransformer) and ``.../infinity-optimum`` (the optimum
engine: ONNX Runtime), torch==2.13.0 first so pip keeps the CPU build; later runs
reuse them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import httpx

from _common import logged_process

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".servicegrid" / "bench-venvs"
REQUIREMENTS = {
    # Infinity 0.0.78's torch engine uses BetterTransformer by default, which needs
    # optimum below 2 and transformers below 4.49
    "torch": (
        ["torch==2.13.0"],
        ["infinity-emb[server,torch]==0.0.78", "optimum>=1.24,<2", "transformers<4.49"],
    ),
    # its optimum engine needs optimum 2 (optimum 1's ONNX Runtime module no longer
    # imports on torch 2.13), so it lives in an environment of its own
    "optimum": (["torch==2.13.0"], ["infinity-emb[server,optimum]==0.0.78"]),
}
SERVED_NAME = "minilm"
START_TIMEOUT = 300.0


def onnx_folder(model_path: Path) -> Path:
    """``model_path`` with an fp32 ONNX export beside its weights, for Infinity's optimum engine.

    The graph is the plain transformer in the layout Infinity's engine reads (inputs
    ``input_ids``, ``attention_mask``, ``token_type_ids``; output ``last_hidden_state``),
    traced with torch's exporter in servicegrid's environment. Only the fp32 graph is
    written: Infinity prefers a quantized file when one exists, and the comparison is
    at equal precision.
    """
    folder = ROOT / ".servicegrid" / "bench-models" / f"{model_path.name}-optimum-onnx"
    if (folder / "model.onnx").is_file():
        return folder
    import torch
    from transformers import AutoModel, AutoTokenizer

    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_path, staging)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    # the same graph servicegrid exports (classic attention, no ahead-of-time fusion):
    # both servers then run one graph, optimised by ONNX Runtime as each session loads
    model = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()
    sample = tokenizer(["a sentence to trace", "another"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(),
            tuple(sample[name] for name in names),
            str(staging / "model.onnx"),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    staging.rename(folder)
    return folder


def venv(engine: str) -> Path:
    return VENVS / ("infinity" if engine == "torch" else f"infinity-{engine}")


def ensure_venv(engine: str = "torch") -> Path:
    """The ``infinity_emb`` command for ``engine``, building its environment first when missing."""
    folder = venv(engine)
    command = folder / "bin" / "infinity_emb"
    if command.exists():
        return command
    print(f"building Infinity's environment in {folder} (a few minutes, once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    for packages in REQUIREMENTS[engine]:
        subprocess.run([*pip, *packages], check=True)
    return command


@contextmanager
def infinity_server(
    model_path: Path, port: int, *, engine: str = "torch", batch_size: int = 32
) -> Iterator[str]:
    """Serve ``model_path`` with Infinity's ``engine`` (torch, or optimum: ONNX Runtime) on CPU;
    yields its base URL, stops it on the way out."""
    command = [
        str(ensure_venv(engine)),
        "v2",
        "--model-id",
        # Infinity hands optimum the ONNX file's path as its glob found it, and optimum
        # wants it relative to the model folder: so the optimum engine runs from there
        "." if engine == "optimum" else str(model_path),
        "--served-model-name",
        SERVED_NAME,
        "--engine",
        engine,
        "--device",
        "cpu",
        "--batch-size",
        str(batch_size),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    env["DO_NOT_TRACK"] = "1"
    cwd = onnx_folder(model_path) if engine == "optimum" else ROOT
    with logged_process(command, env, f"Infinity-{engine}", prefix="bench", cwd=cwd) as server:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, server)
        yield url


def _wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    give_up = time.monotonic() + START_TIMEOUT
    while time.monotonic() < give_up:
        if server.poll() is not None:
            raise RuntimeError(f"Infinity exited with {server.returncode} before serving")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise TimeoutError(f"Infinity did not answer {url}/health within {START_TIMEOUT:.0f} s")


async def embed(client: aiohttp.ClientSession, texts: list[str]) -> None:
    """One OpenAI-style embeddings call to Infinity; its answer is parsed, as a caller would."""
    async with client.post("/embeddings", json={"model": SERVED_NAME, "input": texts}) as answer:
        answer.raise_for_status()
        await answer.json()


def client(url: str) -> aiohttp.ClientSession:
    """An aiohttp session to Infinity: a keep-alive connection per concurrent caller.

    Not httpx: under 64 concurrent callers httpx's connection pool costs more CPU
    in the benchmark's process than Infinity spends answering, so the figures
    measured the client, not Infinity (42 texts/s where aiohttp sees over 120).
    """
    # Idle connections are dropped after 2 s, before the servers' own 5 s keep-alive
    # timeout, so no request is ever sent on a connection the server is closing.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=2)
    return aiohttp.ClientSession(
        base_url=url, connector=connector, timeout=aiohttp.ClientTimeout(total=120.0)
    )


if __name__ == "__main__":
    for engine in REQUIREMENTS:
        print(ensure_venv(engine))
