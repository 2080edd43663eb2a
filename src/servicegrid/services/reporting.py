"""What every model servicer reports the same way: health, processing metadata, measuring."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from servicegrid import __version__
from servicegrid.batching import BatchEngine
from servicegrid.proto import common_pb2
from servicegrid.runtime import gpu_memory_used_mb

__all__ = ["MEASURE_INLINE_CHARS", "health_response", "measured", "processing_metadata"]

Item = TypeVar("Item")

MEASURE_INLINE_CHARS = 4096
"""Characters measured (tokenized) on the event loop, about a millisecond's work; more go to
a worker thread, so that one request's long texts never hold up another's refusal."""


async def measured(
    values: Sequence[str], measure: Callable[[Sequence[str]], list[Item]]
) -> list[Item]:
    """``measure(values)``, off the event loop when the texts are long."""
    if sum(len(value) for value in values) <= MEASURE_INLINE_CHARS:
        return measure(values)
    return await asyncio.to_thread(measure, values)


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
