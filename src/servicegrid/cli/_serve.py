"""``servicegrid serve NAME``: run one local service in this process until SIGTERM."""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape

from servicegrid import catalogue
from servicegrid.settings import Settings

__all__ = ["DEFAULT_PORTS", "LocalService", "grpc_port_for", "port_for", "serve_service"]

EXIT_FAILED = 1

_log = logging.getLogger("servicegrid.cli")


class LocalService(enum.StrEnum):
    """The catalogue services this version can run (``servable``): the gRPC model services,
    the integration API, the gateway, seed 002's users, questions and API gateway, and the
    sample action services seed 003's example calls."""

    GPU = "gpu"
    EMBEDDING = "embedding"
    RERANKING = "reranking"
    DOCUMENTS = "documents"
    INTEGRATION = "integration"
    GATEWAY = "gateway"
    USERS = "users"
    QUESTIONS = "questions"
    API_GATEWAY = "api-gateway"
    TEXT_EXTRACTION = "text-extraction"
    SENTIMENT_ANALYSIS = "sentiment-analysis"
    TEXT_SUMMARIZATION = "text-summarization"

    @property
    def spec(self) -> catalogue.ServiceSpec:
        return catalogue.lookup(self.value)

    @property
    def is_grpc(self) -> bool:
        return self.spec.is_grpc


DEFAULT_PORTS = {service: service.spec.port for service in LocalService}


def port_for(service: LocalService, settings: Settings) -> int:
    """The port in the service's ``*_SERVICE_URL`` when it has one, else its default."""
    target = settings.address_of(service.value)
    if not service.is_grpc:
        target = urlsplit(target).netloc
    _, _, port = target.rpartition(":")
    return int(port) if port.isdigit() else DEFAULT_PORTS[service]


def grpc_port_for(service: LocalService, settings: Settings) -> int | None:
    """The second, gRPC port of a service that serves both: the port of its
    ``*_GRPC_TARGET`` when set, else the catalogue's; None for a service with one port."""
    default = service.spec.grpc_port
    if default is None:
        return None
    target = settings.grpc_targets.get(service.spec.env_prefix, "")
    _, _, port = target.rpartition(":")
    return int(port) if port.isdigit() else default


def serve_service(
    service: LocalService,
    settings: Settings,
    *,
    host: str,
    port: int,
    grpc_port: int | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code (1: could not start).

    ``grpc_port`` is the gRPC port of a service that serves REST and gRPC (default:
    :func:`grpc_port_for`).
    """
    console = Console(stderr=True)
    if service.spec.grpc_port is not None:
        second = grpc_port or grpc_port_for(service, settings)
        assert second is not None
        return _serve_app(service, settings, console, host=host, port=port, grpc_port=second)
    if not service.is_grpc:
        return _serve_http(service, settings, console, host=host, port=port)
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
        return _needs_extra(console, service, exc)
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


def _needs_extra(console: Console, service: LocalService, error: ImportError) -> int:
    """Say which install extra ``service`` needs (its import failed with ``error``); exit 1."""
    extra = service.spec.extra or "models"
    torch_first = "pip install torch==2.13.0 && " if extra == "models" else ""
    console.print(
        f"[red]{service} needs the {extra} extra:[/red] "
        + escape(f"{torch_first}pip install 'servicegrid[{extra}]' ({error})"),
        soft_wrap=True,
    )
    return EXIT_FAILED


def _serve_http(
    service: LocalService, settings: Settings, console: Console, *, host: str, port: int
) -> int:
    """Serve one of the HTTP services (integration, gateway, the samples) until SIGTERM."""
    try:
        if service is LocalService.GATEWAY:
            from servicegrid.gateway.server import run_gateway as run
        elif service is LocalService.INTEGRATION:
            from servicegrid.integration.server import run_integration_service as run
        else:
            from servicegrid.apps.sample_actions import run_sample_service

            run = functools.partial(run_sample_service, service=service.value)
    except ImportError as exc:
        return _needs_extra(console, service, exc)
    try:
        asyncio.run(run(settings, host=host, port=port))
    except (OSError, RuntimeError, ValueError) as exc:
        console.print(f"[red]{service} could not start on {host}:{port}: {exc}[/red]")
        return EXIT_FAILED
    return 0


def _serve_app(
    service: LocalService,
    settings: Settings,
    console: Console,
    *,
    host: str,
    port: int,
    grpc_port: int,
) -> int:
    """Serve one of seed 002's services (REST and gRPC) until SIGTERM."""
    try:
        if service is LocalService.USERS:
            from servicegrid.apps.users.server import run_users_service as run
        elif service is LocalService.QUESTIONS:
            from servicegrid.apps.questions.server import run_questions_service as run
        else:
            from servicegrid.apps.api_gateway.server import run_api_gateway_service as run
    except ImportError as exc:
        return _needs_extra(console, service, exc)
    try:
        asyncio.run(run(settings, host=host, port=port, grpc_port=grpc_port))
    except (OSError, RuntimeError, ValueError) as exc:
        console.print(
            f"[red]{service} could not start on {host}:{port} (gRPC :{grpc_port}): {exc}[/red]"
        )
        return EXIT_FAILED
    return 0
