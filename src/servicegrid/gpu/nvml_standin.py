"""An NVML stand-in: ``pynvml``'s functions over fake devices, for machines without a GPU.

It sits exactly at the NVML boundary (:class:`servicegrid.gpu.nvml.NvmlLibrary`),
so everything above it runs for real. Device names end in "(NVML stand-in)" so
nobody mistakes one for a GPU. Used by the tests and, only when configured
(``SERVICEGRID_NVML=standin``), by a development ``servicegrid up``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_STANDIN_DEVICES", "NvmlStandIn", "StandInDevice"]

_MIB = 1024 * 1024
SUFFIX = " (NVML stand-in)"


@dataclass(frozen=True, slots=True)
class StandInDevice:
    """A fake device: name, memory in MiB, compute capability "major.minor"."""

    name: str
    memory_mb: int
    compute_capability: str = "8.9"
    used_mb: int = 0
    utilization_percent: int = 0
    temperature_celsius: int = 40


DEFAULT_STANDIN_DEVICES = (StandInDevice("GPU 0", 24_576), StandInDevice("GPU 1", 24_576))


@dataclass(frozen=True, slots=True)
class _Memory:
    total: int
    used: int
    free: int


@dataclass(frozen=True, slots=True)
class _Utilization:
    gpu: int
    memory: int


class NVMLError(Exception):
    """What the stand-in raises where NVML would (``pynvml.NVMLError`` has the same name)."""


class NvmlStandIn:
    """The ``pynvml`` functions servicegrid calls, answering for ``devices``."""

    NVML_TEMPERATURE_GPU = 0
    NVMLError = NVMLError

    def __init__(self, devices: Sequence[StandInDevice] = DEFAULT_STANDIN_DEVICES) -> None:
        self.devices = list(devices)
        self.initialised = False
        self.fail_init: Exception | None = None
        self._lock = threading.Lock()

    def nvmlInit(self) -> None:
        if self.fail_init is not None:
            raise self.fail_init
        with self._lock:
            self.initialised = True

    def nvmlShutdown(self) -> None:
        with self._lock:
            self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._check()
        if not 0 <= index < len(self.devices):
            raise NVMLError(f"invalid device index {index}")
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._device(handle).name + SUFFIX

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> _Memory:
        device = self._device(handle)
        total, used = device.memory_mb * _MIB, device.used_mb * _MIB
        return _Memory(total=total, used=used, free=total - used)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> _Utilization:
        return _Utilization(gpu=self._device(handle).utilization_percent, memory=0)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return self._device(handle).temperature_celsius

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        major, _, minor = self._device(handle).compute_capability.partition(".")
        return int(major), int(minor or 0)

    def _check(self) -> None:
        if not self.initialised:
            raise NVMLError("NVML not initialised")

    def _device(self, handle: int) -> StandInDevice:
        self._check()
        return self.devices[handle]
