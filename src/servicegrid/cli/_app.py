"""The ``servicegrid`` command: ``status``, ``up`` and ``version``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Iterator
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from servicegrid.cli._executions import command_group, executions_app
from servicegrid.cli._models import Backend, apply_model_options
from servicegrid.cli._monitor import Monitor, ServiceReport
from servicegrid.cli._render import reports_json, reports_table
from servicegrid.cli._serve import LocalService, port_for, serve_service
from servicegrid.cli._supervise import Supervisor
from servicegrid.cli.probes import check, new_http_transport
from servicegrid.clock import SYSTEM_CLOCK, iso_utc
from servicegrid.settings import ConfigurationError, Settings, load_settings

__all__ = ["app", "main"]

T = TypeVar("T")

EXIT_CONFIG = 2
"""Exit status for invalid configuration (the same as a usage error)."""

app = command_group(
    "servicegrid", "Run AI model services over gRPC and watch the services they depend on."
)
app.add_typer(executions_app, name="executions")


def _positive(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter("must be greater than 0")
    return value


TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        callback=_positive,
        help="Per-probe timeout; default: SERVICEGRID_STATUS_TIMEOUT, 2.0.",
        show_default=False,
    ),
]


def _settings_or_exit() -> Settings:
    """Load settings; on error print each bad variable in red and exit 2."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        console = Console(stderr=True)
        console.print(Text("Invalid configuration:", style="bold red"))
        console.print(Text(str(exc), style="red"))
        raise typer.Exit(EXIT_CONFIG) from None
    logging.basicConfig(level=settings.log_level_number)
    return settings


def _console() -> Console:
    """A console for tables: a terminal's own width, or 120 columns when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=120)


def _caption() -> str:
    return f"checked at {iso_utc(SYSTEM_CLOCK.wall())}"


@app.command()
def status(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print a JSON object keyed by service.")
    ] = False,
    timeout: TimeoutOption = None,
) -> None:
    """Probe every configured service once and report its health and circuit state.

    Exits 0 even when services are down (it is a report), 2 on invalid configuration.
    """
    settings = _settings_or_exit()
    monitor = Monitor(settings, timeout=timeout or settings.status_timeout)
    reports = asyncio.run(monitor.check())
    if json_output:
        typer.echo(reports_json(reports))
    else:
        _console().print(reports_table(reports, caption=_caption()))


@contextlib.contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``stop.set()`` while inside; where unsupported, do nothing."""
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or a platform without loop signal handlers
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _unless_stopped(check: Awaitable[T], stop: asyncio.Event) -> T | None:
    """Await ``check``, or cancel it and return ``None`` as soon as ``stop`` is set."""
    task = asyncio.ensure_future(check)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def _watch(monitor: Monitor, interval: float, console: Console) -> None:
    """Refresh the table every ``interval`` seconds until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    with (
        _stop_on_signals(asyncio.get_running_loop(), stop),
        Live(console=console, auto_refresh=False) as live,
    ):
        while not stop.is_set():
            reports = await _unless_stopped(monitor.check(), stop)
            if reports is None:
                break
            live.update(reports_table(reports, caption=_caption()), refresh=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


@app.command()
def serve(
    service: Annotated[LocalService, typer.Argument(help="The service to run.")],
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help=(
                "Port to listen on; default: the port of its *_SERVICE_URL or *_URL, "
                "or 50051-50054/8005/8000/8001-8003."
            ),
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "0.0.0.0",
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port",
            min=1,
            max=65535,
            help=(
                "gRPC port of users, questions and api-gateway; default: the port of its "
                "*_GRPC_TARGET, or 50061-50063."
            ),
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            metavar="NAME_OR_PATH[=SERVED_NAME]",
            help=(
                "embedding and reranking: a model to serve, replacing SERVICEGRID_*_MODEL(S); "
                "repeat to serve several, the first is the default. A local folder, "
                "all-MiniLM-L6-v2 (packaged), or a hub id in the Hugging Face cache "
                "(downloaded only with SERVICEGRID_ALLOW_DOWNLOAD=true). =SERVED_NAME (split "
                "at the last '=') is the name clients ask for; default: the value as given."
            ),
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        Backend | None,
        typer.Option(
            "--backend",
            help=(
                "embedding and reranking: what runs the models; default: "
                "SERVICEGRID_EMBEDDING_BACKEND or SERVICEGRID_RERANKING_BACKEND, torch."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run one service in this process until SIGTERM or Ctrl-C (then drain and exit 0).

    Fails at once, exit code 1, when SERVICEGRID_DEVICE names a GPU that is not
    there (set SERVICEGRID_DEVICE=cpu to run on the CPU on purpose), or when a
    --model is found nowhere.
    """
    settings = apply_model_options(_settings_or_exit(), service.value, model or [], backend)
    logging.basicConfig(
        level=settings.log_level_number, format="%(levelname)s %(name)s: %(message)s"
    )
    if grpc_port is not None and service.spec.grpc_port is None:
        raise typer.BadParameter(f"{service.value} serves one port only", param_hint="--grpc-port")
    code = serve_service(
        service,
        settings,
        host=host,
        port=port or port_for(service, settings),
        grpc_port=grpc_port,
    )
    raise typer.Exit(code)


@app.command()
def up(
    once: Annotated[bool, typer.Option("--once", help="Print one table and exit.")] = False,
    services: Annotated[
        bool,
        typer.Option(
            "--services/--no-services",
            help=(
                "Start the local services "
                "(gpu, embedding, reranking, documents, integration, gateway, users, "
                "questions, api-gateway, and the sample text-extraction, sentiment-analysis "
                "and text-summarization)."
            ),
        ),
    ] = True,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            metavar="SECONDS",
            callback=_positive,
            help="Seconds between refreshes; default: SERVICEGRID_HEALTH_INTERVAL, 10.0.",
            show_default=False,
        ),
    ] = None,
    timeout: TimeoutOption = None,
) -> None:
    """Start the local services and watch every configured one until Ctrl-C or SIGTERM."""
    settings = _settings_or_exit()
    supervisor = Supervisor(list(LocalService) if services else [])
    try:
        supervisor.start()
        _watch_services(settings, supervisor, once=once, interval=interval, timeout=timeout)
    finally:
        supervisor.stop(grace=settings.shutdown_grace + 5)


def _watch_services(
    settings: Settings,
    supervisor: Supervisor,
    *,
    once: bool,
    interval: float | None,
    timeout: float | None,
) -> None:
    monitor = Monitor(settings, timeout=timeout or settings.status_timeout)
    every = interval or settings.health_interval
    console = _console()
    names = ", ".join(f"{t.service} ({t.kind} {t.url})" for t in monitor.targets)
    console.print(Text(f"Monitoring {len(monitor.targets)} services: {names}"))
    if supervisor.processes:
        started = ", ".join(f"{s.value} (pid {p.pid})" for s, p in supervisor.processes.items())
        console.print(Text(f"Started {started}", style="dim"))
    if once:
        reports = asyncio.run(_when_started(monitor, supervisor))
        console.print(reports_table(reports, caption=_caption()))
        return
    console.print(Text(f"Refreshing every {every:g} s; press Ctrl-C to stop.", style="dim"))
    # KeyboardInterrupt only reaches here where the loop could not take over SIGINT.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_watch(monitor, every, console))
    console.print(Text("Stopped.", style="dim"))


async def _when_started(monitor: Monitor, supervisor: Supervisor) -> list[ServiceReport]:
    """Wait (300 s at most) until every started service answers its health check, then report.

    Readiness is polled with plain health checks: going through the monitor's
    breakers would open them while models load, and hide the services for a
    whole recovery timeout.
    """
    started = {service.value for service in supervisor.processes}
    targets = [t for t in monitor.targets if t.service in started]
    http = new_http_transport()
    try:
        for _ in range(300):
            if len(supervisor.exited()) == len(supervisor.processes):
                break
            outcomes = await asyncio.gather(
                *(check(target, monitor.timeout, http=http) for target in targets),
                return_exceptions=True,
            )
            if not any(isinstance(o, BaseException) for o in outcomes):
                break
            await asyncio.sleep(1.0)
    finally:
        await http.aclose()
    return await monitor.check()


@app.command()
def version() -> None:
    """Print the installed servicegrid version."""
    try:
        number = dist_version("servicegrid")
    except PackageNotFoundError:
        number = "unknown (not installed)"
    typer.echo(f"servicegrid {number}")


def main() -> None:
    """Console-script entry point."""
    app()
