"""What every model service assembles the same way from settings: engines, limits, server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor
from prometheus_client import CollectorRegistry

from servicegrid.batching import BatchEngine, ModelAdapter
from servicegrid.runtime import RunningServer, ServiceRegistration, create_server
from servicegrid.services.validation import Limits
from servicegrid.settings import Settings

__all__ = ["bind", "forward_workers", "limits_from", "start_engine"]

_MIB = 1024 * 1024


def forward_workers(settings: Settings, device: str) -> int:
    """Forward workers per engine on ``device`` (SERVICEGRID_FORWARD_WORKERS, else automatic).

    On CPU this also shares the cores out between them (torch threads, process-wide).
    """
    from servicegrid.models import forward_workers_for, set_cpu_threads

    workers = forward_workers_for(device, settings.forward_workers)
    if device == "cpu":
        set_cpu_threads(workers)
    return workers


async def start_engine(
    adapter: ModelAdapter[Any, Any, Any, Any],
    settings: Settings,
    *,
    name: str,
    forward_workers: int = 1,
) -> BatchEngine[Any, Any]:
    """A started batching engine for ``adapter`` with the configured batch and queue bounds."""
    engine: BatchEngine[Any, Any] = BatchEngine(
        adapter,
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_queue=settings.max_queue,
        forward_workers=forward_workers,
        name=name,
    )
    await engine.start()
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
