"""servicegrid's one door to NVML: read every device's name, memory, load and capability.

``NvmlLibrary`` names the few ``pynvml`` (``nvidia-ml-py``) functions used here;
the real module and :class:`~servicegrid.gpu.nvml_standin.NvmlStandIn` both
satisfy it. Nothing above this module knows which one it talks to.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Protocol, cast

from servicegrid.errors import DeviceUnavailableError

__all__ = ["DeviceReading", "Nvml", "NvmlLibrary", "load_library"]

_MIB = 1024 * 1024


class NvmlLibrary(Protocol):
    """The NVML functions servicegrid calls, as ``pynvml`` spells them."""

    NVML_TEMPERATURE_GPU: int

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int: ...
    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """One device as NVML reports it now."""

    device_id: int
    name: str
    memory_total_mb: int
    memory_used_mb: int
    utilization_percent: float
    temperature_celsius: float
    compute_capability: str


def load_library(kind: str) -> NvmlLibrary:
    """``"nvml"``: the real ``pynvml`` module; anything else is refused.

    The stand-in is built from settings by the caller (it needs its devices).
    Raises DeviceUnavailableError when ``nvidia-ml-py`` is not installed.
    """
    if kind != "nvml":
        raise ValueError(f"unknown NVML library {kind!r}")
    try:
        return cast(NvmlLibrary, importlib.import_module("pynvml"))
    except ImportError as exc:
        raise DeviceUnavailableError(
            "the GPU service needs NVML: pip install 'servicegrid[gpu]' (nvidia-ml-py)"
        ) from exc


class Nvml:
    """NVML opened once; :meth:`read` is safe from any thread."""

    def __init__(self, library: NvmlLibrary) -> None:
        self.library = library
        self._lock = threading.Lock()
        self._handles: list[Any] = []

    def open(self) -> int:
        """Initialise NVML and count the devices; DeviceUnavailableError when there are none."""
        try:
            self.library.nvmlInit()
            count = int(self.library.nvmlDeviceGetCount())
            self._handles = [self.library.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except DeviceUnavailableError:
            raise
        except Exception as exc:
            raise DeviceUnavailableError(
                f"NVML could not be initialised ({type(exc).__name__}: {exc}); "
                "the GPU service needs an NVIDIA GPU and its driver"
            ) from exc
        if count == 0:
            raise DeviceUnavailableError("NVML found no GPU; the GPU service needs at least one")
        return count

    def close(self) -> None:
        with self._lock:
            if self._handles:
                self._handles = []
                self.library.nvmlShutdown()

    @property
    def count(self) -> int:
        return len(self._handles)

    def read(self) -> list[DeviceReading]:
        """Every device, in index order."""
        with self._lock:
            return [self._read(index, handle) for index, handle in enumerate(self._handles)]

    def _read(self, index: int, handle: Any) -> DeviceReading:
        lib = self.library
        name = lib.nvmlDeviceGetName(handle)
        memory = lib.nvmlDeviceGetMemoryInfo(handle)
        major, minor = lib.nvmlDeviceGetCudaComputeCapability(handle)
        return DeviceReading(
            device_id=index,
            name=name.decode() if isinstance(name, bytes) else str(name),
            memory_total_mb=int(memory.total) // _MIB,
            memory_used_mb=int(memory.used) // _MIB,
            utilization_percent=float(lib.nvmlDeviceGetUtilizationRates(handle).gpu),
            temperature_celsius=float(
                lib.nvmlDeviceGetTemperature(handle, lib.NVML_TEMPERATURE_GPU)
            ),
            compute_capability=f"{major}.{minor}",
        )
