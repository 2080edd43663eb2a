"""A registered endpoint whose host names a service is called where discovery finds it.

``http://text-extraction-service:8000/text-extraction/api`` resolves nowhere on one machine;
with discovery, the instance it knows replaces the address and port, and the path is kept.
Endpoints at addresses or domain names are left to DNS, without asking discovery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from servicegrid.discovery.resolver import Discovery
from servicegrid.discovery.static import StaticBackend
from servicegrid.integration import create_app
from tests.integration.conftest import make_service
from tests.support.action_services import ActionServices

EXTRACT = {"input_data": {"document_url": "https://x.test/a.pdf"}}


@asynccontextmanager
async def serving(database_url: str, discovery: Discovery) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(database_url, engine_poll_interval=0.05, discovery=discovery)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://integration"
        ) as client,
    ):
        yield client


async def test_a_service_name_in_the_endpoint_is_found_through_discovery(
    tmp_path: Path, services: ActionServices
) -> None:
    discovery = Discovery([StaticBackend({"text-extraction-service": [services.url]})])
    async with serving(f"sqlite+aiosqlite:///{tmp_path}/i.db", discovery) as client:
        named = make_service(endpoint="http://text-extraction-service:8000/text-extraction/api")
        assert (await client.post("/api/services", json=named)).status_code == 201
        response = await client.post(
            "/api/services/text-extraction/actions/extract/execute", json=EXTRACT
        )
        assert response.status_code == 200, response.text
        assert response.json()["output"]["text"].startswith("Text of https://x.test/a.pdf")
        assert [call["path"] for call in services.calls()] == ["/text-extraction/api/extract"]

        lookups = discovery.lookups
        at_an_address = make_service("direct", endpoint=services.endpoint("text-extraction"))
        assert (await client.post("/api/services", json=at_an_address)).status_code == 201
        response = await client.post("/api/services/direct/actions/extract/execute", json=EXTRACT)
        assert response.status_code == 200, response.text
        assert discovery.lookups == lookups  # an address is not a name to look up
    await discovery.aclose()
