"""The device policy of seed 000: fail fast when the GPU is missing, never fall back to CPU.

The CPU is used only when asked for (``SERVICEGRID_DEVICE=cpu``), and then
with a warning. torch is imported lazily, so this module imports without it.
"""

from __future__ import annotations

import importlib
import logging
import re
from types import ModuleType

from servicegrid.errors import DeviceUnavailableError

__all__ = ["DeviceUnavailableError", "gpu_memory_used_mb", "resolve_device"]

_log = logging.getLogger(__name__)
_CUDA = re.compile(r"cuda(?::(?P<index>\d+))?")
_ENV = "SERVICEGRID_DEVICE"
_CPU_HINT = f"set {_ENV}=cpu to run on the CPU on purpose"


def _torch(requested: str) -> ModuleType:
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise DeviceUnavailableError(
            f"{_ENV}={requested} but torch is not installed "
            f"(install servicegrid[models]); {_CPU_HINT}"
        ) from exc


def resolve_device(requested: str) -> str:
    """Check ``requested`` ("cuda", "cuda:N" or "cpu") and return the device to use.

    "cuda" becomes "cuda:0"; "cpu" is returned with a WARNING log. Raises
    DeviceUnavailableError when torch is missing, CUDA is unavailable or N is
    out of range, and ValueError for any other value.
    """
    value = requested.strip().lower()
    if value == "cpu":
        _log.warning("running on CPU because %s=cpu", _ENV)
        return "cpu"
    match = _CUDA.fullmatch(value)
    if match is None:
        raise ValueError(f"{_ENV} must be 'cuda', 'cuda:N' or 'cpu', not {requested!r}")
    torch = _torch(value)
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"{_ENV}={value} but no CUDA GPU is visible "
            f"(torch.cuda.is_available() is False); {_CPU_HINT}"
        )
    index = int(match["index"] or 0)
    count = int(torch.cuda.device_count())
    if index >= count:
        raise DeviceUnavailableError(
            f"{_ENV}={value} but only {count} CUDA GPU(s) are visible "
            f"(cuda:0..cuda:{count - 1}); {_CPU_HINT}"
        )
    return f"cuda:{index}"


def gpu_memory_used_mb(device: str) -> int:
    """Memory torch has allocated on ``device``, in MiB; 0 on the CPU."""
    if device.strip().lower() == "cpu":
        return 0
    torch = _torch(device)
    return int(torch.cuda.memory_allocated(device)) // (1024 * 1024)
