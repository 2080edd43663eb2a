"""Device policy: fail fast without a GPU, CPU only when asked for.

Tests named ``fake_torch`` put a stand-in torch module in ``sys.modules``: no
GPU exists on these machines, so CUDA being present can only be faked.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from servicegrid.runtime import DeviceUnavailableError, gpu_memory_used_mb, resolve_device

ROOT = Path(__file__).resolve().parents[2]


def fake_torch(monkeypatch: pytest.MonkeyPatch, *, gpus: int, allocated: int = 0) -> None:
    torch = ModuleType("torch")
    torch.cuda = SimpleNamespace(  # type: ignore[attr-defined]
        is_available=lambda: gpus > 0,
        device_count=lambda: gpus,
        memory_allocated=lambda device: allocated,
    )
    monkeypatch.setitem(sys.modules, "torch", torch)


def test_cpu_is_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="servicegrid.runtime")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"
    assert "running on CPU because SERVICEGRID_DEVICE=cpu" in caplog.text
    assert gpu_memory_used_mb("cpu") == 0


@pytest.mark.parametrize("value", ["", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda0", "mps", "tpu"])
def test_other_values_are_a_value_error(value: str) -> None:
    with pytest.raises(ValueError, match="SERVICEGRID_DEVICE"):
        resolve_device(value)


def test_cuda_on_this_machine_fails_fast() -> None:
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(DeviceUnavailableError, match="SERVICEGRID_DEVICE=cpu"):
        resolve_device("cuda")


def test_cuda_without_torch_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(DeviceUnavailableError, match="torch is not installed"):
        resolve_device("cuda:0")


def test_fake_torch_without_cuda_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_torch(monkeypatch, gpus=0)
    with pytest.raises(DeviceUnavailableError) as caught:
        resolve_device("cuda")
    assert str(caught.value) == (
        "SERVICEGRID_DEVICE=cuda but no CUDA GPU is visible "
        "(torch.cuda.is_available() is False); "
        "set SERVICEGRID_DEVICE=cpu to run on the CPU on purpose"
    )


def test_fake_torch_with_one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_torch(monkeypatch, gpus=1, allocated=3 * 1024 * 1024 + 5)
    assert resolve_device("cuda") == "cuda:0"
    assert resolve_device("CUDA:0") == "cuda:0"
    with pytest.raises(DeviceUnavailableError, match=r"only 1 CUDA GPU\(s\) are visible"):
        resolve_device("cuda:1")
    assert gpu_memory_used_mb("cuda:0") == 3


def test_runtime_imports_without_torch() -> None:
    code = "import sys, servicegrid.runtime; assert 'torch' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
