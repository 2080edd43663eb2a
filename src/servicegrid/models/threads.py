"""How many batches run at once on a device, and how many torch threads each one gets.

On a CPU one batch split across every core (torch's default) stalls at each
parallel region whenever any core is taken by other work (the gRPC event loop,
tokenization, a co-located client). Several forward workers, each running its
own batch on a share of the cores, keep every core busy instead:
``docs/benchmarks.md`` measures both. A GPU runs one batch at a time.
"""

from __future__ import annotations

import logging
import os

__all__ = ["MAX_AUTO_CPU_WORKERS", "forward_workers_for", "set_cpu_threads", "usable_cores"]

MAX_AUTO_CPU_WORKERS = 4
"""At most this many CPU forward workers unless configured: more would need many
concurrent callers to fill their batches, and would cut each batch's threads."""

_log = logging.getLogger("servicegrid.models")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, which containers narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def forward_workers_for(device: str, configured: int | None = None) -> int:
    """``configured`` if given; else one per core (up to MAX_AUTO_CPU_WORKERS) on CPU, 1 on GPU."""
    if configured is not None:
        if configured < 1:
            raise ValueError(f"forward workers must be >= 1, got {configured}")
        return configured
    if device == "cpu":
        return min(usable_cores(), MAX_AUTO_CPU_WORKERS)
    return 1


def set_cpu_threads(workers: int) -> int:
    """Give each of ``workers`` concurrent forward passes an equal share of the cores.

    Sets torch's intra-op threads (process-wide) and returns the number per worker.
    """
    import torch  # here, so usable_cores serves the torch-free backends too

    threads = max(1, usable_cores() // max(1, workers))
    torch.set_num_threads(threads)
    _log.info("CPU: %d forward workers, %d torch threads each", workers, threads)
    return threads
