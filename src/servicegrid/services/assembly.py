"""What every model service assembles the same way from settings: engines, limits, server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import ServiceDescriptor
from prometheus_client import CollectorRegistry

from servicegrid.batching import BatchEngine, ModelAdapter
from servicegrid.runtime import RunningServer, ServiceRegistration, create_server
from servicegrid.runtime.memory import IdleMemoryRelease
from servicegrid.services.validation import Limits
from servicegrid.settings import Settings

__all__ = ["bind", "calibration_texts", "forward_workers", "limits_from", "start_engine"]

_MIB = 1024 * 1024
_LONG_CALIBRATION_ITEMS = 2
"""Items in the calibration batch at the model's longest length (kept small: it runs at start)."""
_SHORT_CALIBRATION_WORDS = 8

ItemT = TypeVar("ItemT")


def forward_workers(settings: Settings, device: str) -> int:
    """Forward workers per engine on ``device`` (SERVICEGRID_FORWARD_WORKERS, else automatic).

    On CPU this also shares the cores out between them (torch threads, process-wide).
    """
    from servicegrid.models import forward_workers_for, set_cpu_threads

    workers = forward_workers_for(device, settings.forward_workers)
    if device == "cpu":
        set_cpu_threads(workers)
    return workers


def calibration_texts(count: int, words: int) -> list[str]:
    """``count`` distinct texts of ``words`` words (distinct: some models embed a text once)."""
    return [" ".join([f"calibration{index}", *["text"] * (words - 1)]) for index in range(count)]


async def start_engine(
    adapter: ModelAdapter[ItemT, Any, Any, Any],
    settings: Settings,
    *,
    name: str,
    forward_workers: int = 1,
    item_for: Callable[[str], ItemT] | None = None,
    max_length: int = 512,
) -> BatchEngine[ItemT, Any]:
    """A started batching engine for ``adapter`` with the configured bounds and deadline.

    With ``item_for`` (text -> the adapter's item) and SERVICEGRID_CALIBRATE on,
    the model is timed on a full batch of short texts and a few texts
    ``max_length`` tokens long before the engine serves, so admission control
    has throughput figures from the first request. Once the engine has been
    idle for a moment, the memory freed by its work is given back to the OS.
    """
    # free memory goes back to the OS once the engine has been idle a moment
    went_idle: Callable[[], None] = IdleMemoryRelease().watch(lambda: engine.is_idle())
    engine: BatchEngine[ItemT, Any] = BatchEngine(
        adapter,
        on_idle=went_idle,
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_queue=settings.max_queue,
        max_queue_tokens=settings.max_queue_tokens,
        default_deadline=settings.default_deadline,
        forward_workers=forward_workers,
        name=name,
    )
    await engine.start()
    if item_for is not None and settings.calibrate:
        try:
            size = settings.max_batch_size
            short = [item_for(t) for t in calibration_texts(size, _SHORT_CALIBRATION_WORDS)]
            long = [item_for(t) for t in calibration_texts(_LONG_CALIBRATION_ITEMS, max_length)]
            # the first pass pays the model's one-time start-up; a full batch replaces its figure
            await engine.calibrate([short[:1], short, long[:size]])
        except BaseException:
            await engine.aclose()
            raise
    return engine


def limits_from(settings: Settings) -> Limits:
    """What one request may ask for, from settings."""
    return Limits(
        max_items=settings.max_items_per_request,
        max_text_chars=settings.max_text_chars,
        default_batch_size=settings.max_batch_size,
    )


async def bind(
    address: str,
    descriptor: ServiceDescriptor,
    add_to_server: Callable[[Any, Any], None],
    servicer: object,
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
) -> RunningServer:
    """The service's gRPC server (with health and reflection), bound and not yet started."""
    return await create_server(
        address,
        services=[ServiceRegistration.from_descriptor(descriptor, add_to_server, servicer)],
        max_message_bytes=settings.max_message_mb * _MIB,
        registry=registry,
    )
