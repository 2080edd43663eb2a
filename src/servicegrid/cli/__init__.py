"""The ``servicegrid`` command line (typer + rich).

``servicegrid status [--json] [--timeout S]`` probes every configured service once;
``servicegrid serve embedding|reranking [--port N]`` runs one model service;
``servicegrid up [--once] [--no-services] [--interval S]`` starts the local model
services and keeps watching every configured one;
``servicegrid executions list|show|cancel|resume`` reads and drives the workflow executions of a
running integration service; ``servicegrid version``.
"""

from servicegrid.cli._app import app, main

__all__ = ["app", "main"]
