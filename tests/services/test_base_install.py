"""``pip install servicegrid`` with no extras: the clients work, the heavy stacks are absent.

A fresh virtual environment gets ``pip install <this checkout>`` and nothing
else. In it the clients import and call the real embedding service (run from
the test's own environment), ``servicegrid status`` reports it, no model
runtime or database stack is installed, and ``import servicegrid.resilience``
loads no network library.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the models extra (torch) is not installed")

from tests.support.embedding_thread import ServiceThread
from tests.support.threaded_server import free_port

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sentence_transformers", "dbos", "sqlalchemy", "alembic", "asyncpg")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with ``pip install <checkout>`` (no extras) in it."""
    where = tmp_path_factory.mktemp("base-install") / "venv"
    venv.EnvBuilder(with_pip=True).create(where)
    python = where / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        check=True,
        timeout=900,
    )
    return python


@pytest.fixture(scope="module")
def embedding_service() -> Iterator[ServiceThread]:
    running = ServiceThread(free_port())
    running.start()
    try:
        yield running
    finally:
        running.close()


def run(python: Path, script: str) -> object:
    """Run ``script`` in a fresh interpreter of ``python``; it prints one JSON value."""
    done = subprocess.run(
        [str(python), "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",  # not the checkout: the installed package, not the source tree
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_no_model_runtime_or_database_stack_is_installed(base_python: Path) -> None:
    found = run(
        base_python,
        f"""
        import importlib.util, json
        print(json.dumps([m for m in {HEAVY!r} if importlib.util.find_spec(m) is not None]))
        """,
    )
    assert found == []


def test_the_resilience_layer_loads_no_network_library(base_python: Path) -> None:
    loaded = run(
        base_python,
        """
        import json, sys
        import servicegrid.resilience
        print(json.dumps([m for m in ("httpx", "requests", "grpc", "aiohttp") if m in sys.modules]))
        """,
    )
    assert loaded == []


def test_the_clients_import_and_call_the_embedding_service(
    base_python: Path, embedding_service: ServiceThread
) -> None:
    answer = run(
        base_python,
        f"""
        import asyncio, json
        from servicegrid import EmbeddingClient, EnhancedHTTPClient, ResilientServiceClient
        from servicegrid.clients import ServiceIntegrationClient

        async def main():
            async with EmbeddingClient(service_url="127.0.0.1:{embedding_service.port}") as c:
                response = await c.generate_embeddings(["a base install"])
                return response.embeddings[0].dimension

        print(json.dumps(asyncio.run(main())))
        """,
    )
    assert answer == 384


def test_status_reports_the_running_embedding_service(
    base_python: Path, embedding_service: ServiceThread
) -> None:
    done = subprocess.run(
        [str(base_python.parent / "servicegrid"), "status", "--json", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={
            "PATH": "/usr/bin:/bin",
            "EMBEDDING_SERVICE_URL": f"127.0.0.1:{embedding_service.port}",
        },
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["embedding"]["health"] == "healthy"
    assert report["gpu"]["health"] == "unhealthy"  # a port nobody listens on: still a report


def test_serving_the_integration_service_says_which_extra_it_needs(base_python: Path) -> None:
    done = subprocess.run(
        [str(base_python.parent / "servicegrid"), "serve", "integration", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "pip install 'servicegrid[integration]'" in done.stderr
