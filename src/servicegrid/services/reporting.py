"""What every model servicer reports the same way: health, processing metadata, measuring."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from servicegrid import __version__
from servicegrid.batching import BatchEngine
from servicegrid.proto import common_pb2
from servicegrid.runtime import gpu_memory_used_mb

__all__ = ["MEASURE_INLINE", "health_response", "measured", "processing_metadata"]

T = TypeVar("T")
Item = TypeVar("Item")

MEASURE_INLINE = 32
"""Items measured (tokenized) on the event loop; more go to a worker thread."""


async def measured(values: Sequence[T], measure: Callable[[T], Item]) -> list[Item]:
    """``[measure(v) for v in values]``, off the event loop when there are many."""
    if len(values) <= MEASURE_INLINE:
        return [measure(value) for value in values]
    return await asyncio.to_thread(lambda: [measure(value) for value in values])


def health_response(
    engines: Mapping[str, BatchEngine[Any, Any]],
    *,
    device: str,
    uptime: float,
    default_model: str,
) -> common_pb2.HealthResponse:
    """Healthy, or degraded while any model's queue is full."""
    overloaded = [name for name, engine in engines.items() if engine.is_overloaded()]
    return common_pb2.HealthResponse(
        status="degraded" if overloaded else "healthy",
        model_loaded=True,
        device=device,
        uptime_seconds=uptime,
        gpu_memory_used_mb=gpu_memory_used_mb(device),
        version=__version__,
        loaded_models=list(engines),
        details={"default_model": default_model}
        | ({"overloaded": ",".join(overloaded)} if overloaded else {}),
    )


def processing_metadata(
    model_name: str, *, elapsed: float, device: str, batch_size: int, total_requests: int
) -> common_pb2.ProcessingMetadata:
    """Seed 000's ProcessingMetadata for an answer that took ``elapsed`` seconds."""
    return common_pb2.ProcessingMetadata(
        model_name=model_name,
        processing_time_ms=1000 * elapsed,
        gpu_memory_used_mb=gpu_memory_used_mb(device),
        batch_size=batch_size,
        total_requests=total_requests,
    )
