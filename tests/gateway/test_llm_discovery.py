"""The gateway's chat hosts found through discovery (``SERVICEGRID_LLM_SERVICE``)."""

from __future__ import annotations

import httpx
import pytest

from servicegrid.gateway.clients import GatewayClients
from servicegrid.settings import load_settings
from tests.support.llm_hosts import LLMHostStandIns


async def test_chat_hosts_come_from_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    from servicegrid.gateway.app import create_app

    with LLMHostStandIns(1) as hosts:
        monkeypatch.setenv("LLM_SERVICE_URL", hosts[0].url)  # what the env backend answers
        settings = load_settings(llm_service="llm-service", llm_model="tiny")
        clients = GatewayClients.from_settings(settings, registry=None)
        await clients.start()
        try:
            app = create_app(settings, clients=clients)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
                answer = await api.post(
                    "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
                )
        finally:
            await clients.aclose()
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]
    assert hosts[0].served >= 1


async def test_a_service_discovery_cannot_find_leaves_chat_503_not_the_gateway_down() -> None:
    from servicegrid.gateway.app import create_app

    settings = load_settings(llm_service="no-such-llm")
    clients = GatewayClients.from_settings(settings, registry=None)
    await clients.start()  # discovery fails; the gateway starts anyway
    try:
        app = create_app(settings, clients=clients)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
            answer = await api.post(
                "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
            )
            ready = await api.get("/ready")
    finally:
        await clients.aclose()
    assert answer.status_code == 503, answer.text
    assert "Retry-After" in answer.headers
    assert ready.status_code == 200
