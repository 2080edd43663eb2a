"""Assemble the GPU management service from settings, and run it as a process (:50051).

Without a GPU it does not start (seed 000): NVML must initialise and find at
least one device. The NVML stand-in runs only when configured explicitly
(``SERVICEGRID_NVML=standin``), is logged as such, and says so in GetStatus and
GetHealth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.discovery.registration import announcer
from servicegrid.gpu import LeaseStore, Nvml, NvmlLibrary, NvmlStandIn, TenantPolicy
from servicegrid.gpu.nvml import load_library
from servicegrid.gpu.nvml_standin import DEFAULT_STANDIN_DEVICES, StandInDevice
from servicegrid.proto import gpu_service_pb2, gpu_service_pb2_grpc
from servicegrid.runtime import RunningServer, serve
from servicegrid.services.assembly import bind
from servicegrid.services.gpu.servicer import GPUServicer
from servicegrid.settings import Settings

__all__ = ["GpuApp", "build_gpu_service", "nvml_library", "run_gpu_service"]

_log = logging.getLogger("servicegrid.services.gpu")


@dataclass(slots=True)
class GpuApp:
    """A built, not yet started, GPU service: the server and what it owns."""

    running: RunningServer
    servicer: GPUServicer
    sweep_interval: float
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False)

    def start_sweeper(self) -> None:
        """Delete expired leases every ``sweep_interval`` seconds until :meth:`aclose`."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                swept = await asyncio.to_thread(self.servicer.store.sweep)
            except Exception:
                _log.exception("sweeping expired GPU leases failed; trying again later")
                continue
            if swept:
                _log.info("swept %d expired GPU lease(s)", swept)

    async def aclose(self) -> None:
        """Stop the sweeper, close the lease store and NVML (after the server has stopped)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self.servicer.store.close()
        self.servicer.nvml.close()


def nvml_library(settings: Settings) -> NvmlLibrary:
    """Real NVML, or the stand-in when ``SERVICEGRID_NVML=standin``."""
    if settings.nvml != "standin":
        return load_library("nvml")
    devices = [
        StandInDevice(d.name, d.memory_mb, d.compute_capability)
        for d in settings.nvml_standin_devices
    ] or list(DEFAULT_STANDIN_DEVICES)
    return NvmlStandIn(devices)


async def build_gpu_service(
    settings: Settings,
    *,
    address: str,
    registry: CollectorRegistry | None = None,
    library: NvmlLibrary | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> GpuApp:
    """Open NVML (fail fast without a GPU), open the lease store, bind the server.

    ``library`` replaces what settings choose (tests pass an NvmlStandIn).
    Raises :class:`servicegrid.runtime.DeviceUnavailableError` without a GPU.
    """
    library = nvml_library(settings) if library is None else library
    standin = isinstance(library, NvmlStandIn)
    nvml = Nvml(library)
    count = await asyncio.to_thread(nvml.open)
    if standin:
        _log.warning("GPU service on the NVML stand-in (%d fake devices): no real GPU", count)
    store = LeaseStore(settings.gpu_lease_db, clock=clock)
    try:
        servicer = GPUServicer(
            nvml,
            store,
            policy=TenantPolicy(
                allowed=frozenset(settings.gpu_tenants),
                quotas_mb=dict(settings.gpu_tenant_quotas_mb),
                default_quota_mb=settings.gpu_default_quota_mb,
            ),
            default_lease_seconds=settings.gpu_lease_seconds,
            max_lease_seconds=settings.gpu_max_lease_seconds,
            standin=standin,
            clock=clock,
        )
        running = await bind(
            address,
            gpu_service_pb2.DESCRIPTOR.services_by_name["GPUService"],
            gpu_service_pb2_grpc.add_GPUServiceServicer_to_server,
            servicer,
            settings,
            registry=registry,
        )
    except BaseException:
        store.close()
        nvml.close()
        raise
    return GpuApp(running, servicer, settings.gpu_sweep_interval)


async def run_gpu_service(settings: Settings, *, address: str) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls and close the store."""
    app = await build_gpu_service(settings, address=address)
    app.start_sweeper()
    try:
        await serve(
            app.running,
            grace=settings.shutdown_grace,
            announce=announcer(settings, "gpu"),
        )
    finally:
        await app.aclose()
