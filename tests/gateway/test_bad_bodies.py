"""Bodies the framework cannot even read are bad input (422 naming the body), not a 400 or 500."""

from __future__ import annotations

import httpx
import pytest

from servicegrid.gateway.app import create_app
from servicegrid.gateway.clients import GatewayClients
from servicegrid.settings import load_settings


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/v1/embeddings", b'{"input": "\xff"}', "application/json"),
        ("/embed", b'{"inputs": "\xff\xfe"}', "application/json"),
        ("/v1/documents", b"--x\r\nnot multipart", "multipart/form-data; boundary=x"),
    ],
)
async def test_an_unreadable_body_is_422_naming_the_body(
    path: str, body: bytes, content_type: str
) -> None:
    settings = load_settings()
    clients = GatewayClients.from_settings(settings, registry=None)
    app = create_app(settings, clients=clients)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
            answer = await api.post(path, content=body, headers={"content-type": content_type})
    finally:
        await clients.aclose()
    assert answer.status_code == 422, answer.text
    if path == "/embed":  # TEI's shape
        assert answer.json()["error_type"] == "validation"
        assert "body" in answer.json()["error"]
    else:
        assert answer.json()["error"]["param"] == "body"
