"""``servicegrid executions list|show|cancel|resume``: workflow executions of a running service.

Every command talks to the integration service over REST, at ``--url`` or else at
``INTEGRATION_SERVICE_URL`` (``http://localhost:8005/api``). A failure is one line on stderr and
an exit status that tells its kind:

.. code-block:: text

    1  any other error the service answered (a bad --status, ...)
    2  invalid configuration or usage
    3  no such execution or workflow (404)
    4  the execution is not in a state that allows it (409: cancelling a finished one, ...)
    5  the service could not be reached
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from servicegrid.clients import ServiceIntegrationClientSync
from servicegrid.errors import (
    ConflictError,
    MaxRetriesExceededError,
    ResourceNotFoundError,
    ServiceError,
    ServiceUnavailable,
    TransportError,
)
from servicegrid.settings import ConfigurationError, load_settings

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_UNREACHABLE",
    "command_group",
    "executions_app",
]

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNREACHABLE = 5

_LISTED = 100
"""Executions read per request when the list spans every workflow (the API's largest page)."""

_STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELLED": "yellow",
    "RUNNING": "cyan",
    "PENDING": "dim",
}


def command_group(name: str, summary: str) -> typer.Typer:
    """A group of commands as servicegrid's are: help when given none, plain tracebacks."""
    return typer.Typer(
        name=name,
        help=summary,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


executions_app = command_group(
    "executions",
    "List, show, cancel and resume the workflow executions of a running integration service.",
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="The service's API; default: INTEGRATION_SERVICE_URL, http://localhost:8005/api.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", metavar="SECONDS", min=0.001, help="Per-request timeout.")
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _base_url(url: str | None) -> str:
    if url is not None:
        return url
    try:
        return load_settings().integration_service_url
    except ConfigurationError as exc:
        raise _fail(f"invalid configuration: {exc}", EXIT_CONFIG) from None


@contextmanager
def _client(url: str | None, timeout: float) -> Iterator[ServiceIntegrationClientSync]:
    """A client for the service; its errors become one line on stderr and an exit status."""
    base_url = _base_url(url)
    try:
        client = ServiceIntegrationClientSync(base_url, timeout=timeout)
    except ValueError as exc:  # a malformed URL
        raise _fail(str(exc), EXIT_CONFIG) from None
    try:
        with client:
            yield client
    except ResourceNotFoundError as exc:
        raise _fail(exc.message, EXIT_NOT_FOUND) from None
    except ConflictError as exc:
        raise _fail(exc.message, EXIT_CONFLICT) from None
    except (TransportError, ServiceUnavailable, MaxRetriesExceededError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, ServiceError) else exc
        message = cause.message if isinstance(cause, ServiceError) else str(cause)
        raise _fail(
            f"integration service at {base_url} is not reachable: {message}", EXIT_UNREACHABLE
        ) from None
    except ServiceError as exc:
        raise _fail(exc.message, EXIT_ERROR) from None


def _echo_json(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, default=str))


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _status(value: object) -> Text:
    return Text(str(value), style=_STATUS_STYLE.get(str(value), ""))


def _cell(value: object) -> Text:
    return Text("-" if value is None else str(value))


def executions_table(page: dict[str, Any]) -> Table:
    """One row per execution: id, workflow, status, created, finished."""
    shown = len(page["items"])
    caption = f"page {page['page']} of {page.get('pages', '?')}: {shown} of {page['total']}"
    table = Table(title="executions", caption=caption, expand=False)
    for name in ("id", "workflow", "status", "created", "finished"):
        table.add_column(name, no_wrap=True)
    for item in page["items"]:
        table.add_row(
            Text(str(item["id"])),
            _cell(item.get("workflow_name") or item.get("workflow_id")),
            _status(item.get("status")),
            _cell(item.get("created_at")),
            _cell(item.get("finished_at")),
        )
    return table


def execution_tables(execution: dict[str, Any]) -> tuple[Table, Table]:
    """The execution's fields, and one row per step."""
    fields = Table(title=f"execution {execution['id']}", show_header=False, expand=False)
    fields.add_column("field", style="bold")
    fields.add_column("value", overflow="fold")
    for name in ("workflow_name", "workflow_id", "created_at", "started_at", "finished_at"):
        fields.add_row(name, _cell(execution.get(name)))
    fields.add_row("status", _status(execution.get("status")))
    if execution.get("error") is not None:
        fields.add_row("error", Text(json.dumps(execution["error"]), style="red"))
    if execution.get("output") is not None:
        fields.add_row("output", Text(json.dumps(execution["output"], default=str)))
    steps = Table(title="steps", expand=False)
    for name in ("step", "action", "status", "attempts", "ms", "error"):
        steps.add_column(name, overflow="fold")
    for step in execution.get("steps") or []:
        action = f"{step.get('service')}.{step.get('action')}" if step.get("service") else "-"
        duration = step.get("duration_ms")
        error = step.get("error") or {}
        steps.add_row(
            Text(str(step["id"])),
            Text(action),
            _status(step.get("status")),
            _cell(step.get("attempts")),
            _cell(None if duration is None else f"{duration:.0f}"),
            Text(str(error.get("message", "")) if isinstance(error, dict) else str(error)),
        )
    return fields, steps


def _workflow_ids(client: ServiceIntegrationClientSync) -> list[str]:
    ids: list[str] = []
    page = 1
    while True:
        answer = client.get_workflows(page=page, per_page=_LISTED)
        ids.extend(str(workflow["id"]) for workflow in answer["items"])
        if page >= int(answer.get("pages") or 1) or not answer["items"]:
            return ids
        page += 1


def _newest(
    client: ServiceIntegrationClientSync, workflow_id: str, status: str | None, count: int
) -> tuple[list[dict[str, Any]], int]:
    """The ``count`` newest executions of one workflow, and how many it has in all."""
    items: list[dict[str, Any]] = []
    page, total = 1, 0
    while len(items) < count:
        answer = client.get_workflow_executions(
            workflow_id, status=status, page=page, per_page=_LISTED
        )
        total = int(answer["total"])
        items.extend(answer["items"])
        if not answer["items"] or len(items) >= total:
            break
        page += 1
    return items[:count], total


def list_every_workflow(
    client: ServiceIntegrationClientSync, *, status: str | None, page: int, per_page: int
) -> dict[str, Any]:
    """One page of the executions of every workflow, newest first (the API lists per workflow).

    Each workflow is asked for its newest ``page * per_page`` executions only.
    """
    wanted = page * per_page
    merged: list[dict[str, Any]] = []
    total = 0
    for workflow_id in _workflow_ids(client):
        items, count = _newest(client, workflow_id, status, wanted)
        merged.extend(items)
        total += count
    merged.sort(key=lambda item: str(item["id"]))
    merged.sort(key=lambda item: str(item["created_at"]), reverse=True)
    return {
        "items": merged[wanted - per_page : wanted],
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": max(1, -(-total // per_page)),
    }


@executions_app.command("list")
def list_executions(
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only PENDING, RUNNING, COMPLETED, FAILED or CANCELLED ones."
        ),
    ] = None,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", metavar="ID", help="Only this workflow's (its id or name)."),
    ] = None,
    page: Annotated[int, typer.Option("--page", min=1, help="Page number.")] = 1,
    per_page: Annotated[
        int, typer.Option("--per-page", min=1, max=100, help="Executions per page.")
    ] = 20,
    json_output: JsonOption = False,
    url: UrlOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """List executions, newest first: one workflow's, or every workflow's."""
    status = status.upper() if status else None
    with _client(url, timeout) as client:
        if workflow is not None:
            answer = dict(
                client.get_workflow_executions(
                    workflow, status=status, page=page, per_page=per_page
                )
            )
        else:
            answer = list_every_workflow(client, status=status, page=page, per_page=per_page)
    if json_output:
        _echo_json(answer)
    else:
        _console().print(executions_table(answer))


ExecutionId = Annotated[str, typer.Argument(metavar="ID", help="The execution's id.")]


def _print_execution(execution: dict[str, Any], json_output: bool) -> None:
    if json_output:
        _echo_json(execution)
        return
    console = _console()
    for table in execution_tables(execution):
        console.print(table)


ExecutionCall = Callable[[ServiceIntegrationClientSync, str], Mapping[str, Any]]


def _add_execution_command(name: str, call: ExecutionCall, summary: str) -> None:
    """Add the command ``name``: ``call`` on one execution, its answer printed."""

    def command(
        execution_id: ExecutionId,
        json_output: JsonOption = False,
        url: UrlOption = None,
        timeout: TimeoutOption = 30.0,
    ) -> None:
        with _client(url, timeout) as client:
            execution = dict(call(client, execution_id))
        _print_execution(execution, json_output)

    executions_app.command(name, help=summary)(command)


_add_execution_command(
    "show",
    ServiceIntegrationClientSync.get_workflow_execution_status,
    "Show one execution: its status, input, output, error and every step.",
)
_add_execution_command(
    "cancel",
    ServiceIntegrationClientSync.cancel_workflow_execution,
    "Cancel a pending or running execution (exit 4 if it has already finished).",
)
_add_execution_command(
    "resume",
    ServiceIntegrationClientSync.resume_workflow_execution,
    "Run a failed or cancelled execution again from the step it stopped at (else exit 4).",
)
