"""The ``servicegrid`` command line (typer + rich).

``servicegrid status [--json] [--timeout S]`` probes every configured service once;
``servicegrid up [--once] [--interval S]`` keeps watching them; ``servicegrid version``.
"""

from servicegrid.cli._app import app, main

__all__ = ["app", "main"]
