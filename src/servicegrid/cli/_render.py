"""How reports look: a rich table for people, a JSON object for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from servicegrid.cli._monitor import ServiceReport

__all__ = ["reports_json", "reports_table"]

_CIRCUIT_STYLE = {"closed": "green", "open": "red", "half_open": "yellow"}
_HEALTH_STYLE = {"healthy": "green", "unhealthy": "red", "unknown": "yellow"}


def _health_cell(report: ServiceReport) -> Text:
    probe = report.probe
    text = Text(probe.health, style=_HEALTH_STYLE[probe.health])
    if probe.healthy and probe.response_ms is not None:
        text.append(f" {probe.response_ms:.1f} ms", style="dim")
    elif probe.error:
        text.append(f" {_short(probe.error)}", style="dim")
    return text


def _short(error: str) -> str:
    """The most specific part of an error for a table cell; JSON keeps it whole.

    Errors read ``Type: context: ...: cause`` (gRPC's "failed to connect to all
    addresses; ...: Connection refused"), and the cause is what fits a cell.
    """
    return error.rsplit(": ", 1)[-1]


def _time_of(iso: object) -> str:
    """``2025-11-15T10:32:12Z`` as ``10:32:12Z``: the date is the caption's; JSON keeps it whole."""
    return str(iso).partition("T")[2] or str(iso) if iso else "-"


def reports_table(reports: Sequence[ServiceReport], *, caption: str | None = None) -> Table:
    """One row per service: service, kind, URL, circuit, failures, last failure, health."""
    table = Table(title="servicegrid services", caption=caption, expand=False)
    table.add_column("service", style="bold", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("URL", no_wrap=True)
    table.add_column("circuit", no_wrap=True)
    table.add_column("failures", justify="right", min_width=8)
    table.add_column("last failure", no_wrap=True)
    table.add_column("health", overflow="fold")
    for report in reports:
        state = str(report.circuit.get("state", "unknown"))
        # Text cells: URLs and error messages may contain "[...]", which is not markup.
        table.add_row(
            Text(report.probe.service),
            Text(report.probe.kind),
            Text(report.probe.url),
            Text(state, style=_CIRCUIT_STYLE.get(state, "")),
            Text(str(report.circuit.get("failure_count", 0))),
            Text(_time_of(report.circuit.get("last_failure"))),
            _health_cell(report),
        )
    return table


def reports_json(reports: Sequence[ServiceReport]) -> str:
    """``{service: status}`` as indented JSON."""
    body: dict[str, Any] = {report.probe.service: report.to_json() for report in reports}
    return json.dumps(body, indent=2)
