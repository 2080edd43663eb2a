"""Run the integration service for real: on a SQLite file under ``tmp_path`` and on PostgreSQL.

``db_url`` is parametrized over both backends, so every test that uses it (or ``client``) runs
twice, with ids ``sqlite`` and ``postgresql``; the PostgreSQL variant gets a fresh database on
the session's server and skips when PostgreSQL is not installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from servicegrid.integration import create_app
from tests.support.action_services import ActionServices
from tests.support.fixtures import started_per_module

Running = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@asynccontextmanager
async def running(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app on ``database_url`` with its lifespan run, behind an in-process HTTP client."""
    app = create_app(database_url, engine_poll_interval=0.05)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://integration") as client,
    ):
        yield client


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "integration.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    """An empty database's async URL: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{db_path}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def sync_url(database_url: str) -> str:
    """The blocking-driver twin of an async URL: ``sqlite`` or ``postgresql+psycopg``."""
    url = make_url(database_url)
    drivername = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return url.set(drivername=drivername).render_as_string(hide_password=False)


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(db_url) as started:
        yield started


running_services = started_per_module(ActionServices)


@pytest.fixture
def services(running_services: ActionServices) -> ActionServices:
    """The real action services, started once per module, their call log emptied for this test."""
    running_services.log.reset()
    return running_services


def make_service(name: str = "text-extraction", **overrides: Any) -> dict[str, Any]:
    """A registration body in the shape seed 003 uses."""
    body: dict[str, Any] = {
        "name": name,
        "description": "Extract text from documents",
        "endpoint": "http://text-extraction-service:8000/api",
        "actions": [
            {
                "name": "extract",
                "description": "Extract text from a document",
                "input_schema": {
                    "type": "object",
                    "properties": {"document_url": {"type": "string", "format": "uri"}},
                    "required": ["document_url"],
                },
                "output_schema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                },
            }
        ],
        "metadata": {"version": "1.0.0", "provider": "servicegrid"},
    }
    body.update(overrides)
    return body
