"""``servicegrid serve NAME``: run one local service in this process until SIGTERM."""

from __future__ import annotations

import asyncio
import enum
import logging
from urllib.parse import urlsplit

from rich.console import Console

from servicegrid.settings import Settings

__all__ = ["DEFAULT_PORTS", "LocalService", "port_for", "serve_service"]

EXIT_FAILED = 1

_log = logging.getLogger("servicegrid.cli")


class LocalService(enum.StrEnum):
    """The services this version can run: the gRPC model services and the integration API."""

    GPU = "gpu"
    EMBEDDING = "embedding"
    RERANKING = "reranking"
    DOCUMENTS = "documents"
    INTEGRATION = "integration"

    @property
    def is_grpc(self) -> bool:
        return self is not LocalService.INTEGRATION


DEFAULT_PORTS = {
    LocalService.GPU: 50051,
    LocalService.EMBEDDING: 50052,
    LocalService.RERANKING: 50053,
    LocalService.DOCUMENTS: 50054,
    LocalService.INTEGRATION: 8005,
}


_EXTRAS = {
    LocalService.GPU: "gpu",
    LocalService.EMBEDDING: "models",
    LocalService.RERANKING: "models",
    LocalService.DOCUMENTS: "documents",
}


def port_for(service: LocalService, settings: Settings) -> int:
    """The port in the service's ``*_SERVICE_URL`` when it has one, else its default."""
    target = {
        LocalService.GPU: settings.gpu_service_url,
        LocalService.EMBEDDING: settings.embedding_service_url,
        LocalService.RERANKING: settings.reranking_service_url,
        LocalService.DOCUMENTS: settings.docling_vlm_service_url,
        LocalService.INTEGRATION: settings.integration_service_url,
    }[service]
    if not service.is_grpc:
        target = urlsplit(target).netloc
    _, _, port = target.rpartition(":")
    return int(port) if port.isdigit() else DEFAULT_PORTS[service]


def serve_service(service: LocalService, settings: Settings, *, host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code (1: could not start)."""
    console = Console(stderr=True)
    if service is LocalService.INTEGRATION:
        return _serve_integration(settings, console, host=host, port=port)
    try:
        # imported here: these pull in torch or parsers, which `servicegrid status` never needs
        if service is LocalService.GPU:
            from servicegrid.services.gpu.app import run_gpu_service as run
        elif service is LocalService.EMBEDDING:
            from servicegrid.services.embedding.app import run_embedding_service as run
        elif service is LocalService.DOCUMENTS:
            from servicegrid.services.documents.app import run_documents_service as run
        else:
            from servicegrid.services.reranking.app import run_reranking_service as run
        from servicegrid.runtime import DeviceUnavailableError
    except ImportError as exc:
        extra = _EXTRAS[service]
        torch_first = "pip install torch==2.13.0 && " if extra == "models" else ""
        console.print(
            f"[red]{service} needs the {extra} extra:[/red] {torch_first}"
            f"pip install 'servicegrid[{extra}]' ({exc})"
        )
        return EXIT_FAILED
    address = f"{host}:{port}"
    try:
        asyncio.run(run(settings, address=address))
    except DeviceUnavailableError as exc:
        console.print(f"[red]{service}: {exc}[/red]")
        return EXIT_FAILED
    except (FileNotFoundError, RuntimeError) as exc:
        console.print(f"[red]{service} could not start on {address}: {exc}[/red]")
        return EXIT_FAILED
    return 0


def _serve_integration(settings: Settings, console: Console, *, host: str, port: int) -> int:
    from servicegrid.integration.server import run_integration_service

    try:
        asyncio.run(run_integration_service(settings, host=host, port=port))
    except (OSError, RuntimeError, ValueError) as exc:
        console.print(f"[red]integration could not start on {host}:{port}: {exc}[/red]")
        return EXIT_FAILED
    return 0
