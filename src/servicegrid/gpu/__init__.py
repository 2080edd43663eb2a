"""GPU management: the NVML boundary, its development stand-in, and tenant leases.

Only :mod:`servicegrid.gpu.nvml` calls NVML. The stand-in
(:mod:`servicegrid.gpu.nvml_standin`) offers the same functions over fake
devices, for tests and for development machines without a GPU; it is used only
when configured explicitly (``SERVICEGRID_NVML=standin``).
"""

from servicegrid.gpu.leases import Lease, LeaseRequest, LeaseStore, TenantPolicy
from servicegrid.gpu.nvml import DeviceReading, Nvml, NvmlLibrary, load_library
from servicegrid.gpu.nvml_standin import NvmlStandIn, StandInDevice

__all__ = [
    "DeviceReading",
    "Lease",
    "LeaseRequest",
    "LeaseStore",
    "Nvml",
    "NvmlLibrary",
    "NvmlStandIn",
    "StandInDevice",
    "TenantPolicy",
    "load_library",
]
