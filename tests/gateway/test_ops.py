"""Operations endpoints, an upstream that stops, and the gateway's CPU-only imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx

from servicegrid.gateway import GatewayClients, create_app
from servicegrid.settings import load_settings
from tests.gateway.conftest import AppMaker, ModelServices, gateway_settings, http, make_clients


async def test_health_and_ready(api: httpx.AsyncClient) -> None:
    health = await api.get("/health")
    ready = await api.get("/ready")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200


async def test_clients_from_settings_open_and_close_in_the_lifespan(
    services: ModelServices,
) -> None:
    app = create_app(gateway_settings(services))
    async with http(app) as api:
        assert (await api.get("/ready")).status_code == 503  # lifespan not run yet
        async with app.router.lifespan_context(app):
            assert (await api.get("/ready")).status_code == 200
            embedded = await api.post("/v1/embeddings", json={"input": "hello"})
            assert embedded.status_code == 200, embedded.text
            clients = app.state.clients
        assert (await api.get("/ready")).status_code == 503
    assert clients.embedding.state.value == "closed"


async def test_metrics_count_requests_by_route_and_status(make_app: AppMaker) -> None:
    async with http(make_app()) as api:
        await api.post("/v1/embeddings", json={"input": "x"})
        await api.post("/v1/embeddings", json={"input": []})
        await api.get("/nowhere")
        text = (await api.get("/metrics")).text
    assert (
        'servicegrid_gateway_requests_total{method="POST",route="/v1/embeddings",status="200"} 1.0'
        in text
    )
    assert 'route="/v1/embeddings",status="422"' in text
    assert 'route="unmatched",status="404"' in text
    assert "servicegrid_gateway_request_seconds_bucket" in text


async def test_the_status_endpoint_reports_breakers_reachability_and_auth(
    api: httpx.AsyncClient,
) -> None:
    body = (await api.get("/v1/api/status/services")).json()
    assert body["gateway"]["auth"] == "open"
    for name in ("embedding", "reranking"):
        assert body[name]["reachable"] is True
        assert body[name]["state"] == "closed"
        assert "failure_count" in body[name]


async def test_a_stopped_upstream_is_503_with_retry_after(services: ModelServices) -> None:
    doomed = services.start(services.build_embedding)
    clients = make_clients(doomed.running.port, services.reranking.running.port)
    app = create_app(gateway_settings(services), clients=clients)
    try:
        async with http(app) as api:
            assert (await api.post("/v1/embeddings", json={"input": "x"})).status_code == 200
            services.stop(doomed)
            down = await api.post("/v1/embeddings", json={"input": "x"})
            tei_down = await api.post("/embed", json={"inputs": "x"})
            status = (await api.get("/v1/api/status/services")).json()
            still_ready = await api.get("/ready")
    finally:
        await clients.aclose()
    assert down.status_code == 503, down.text
    assert int(down.headers["Retry-After"]) >= 1
    assert down.json()["error"]["type"] == "server_error"
    assert tei_down.status_code == 503
    assert tei_down.json()["error_type"] == "unhealthy"
    assert status["embedding"]["reachable"] is False
    assert status["reranking"]["reachable"] is True
    assert still_ready.status_code == 200  # one dead upstream does not make the gateway unready


def test_the_gateway_imports_no_model_library() -> None:
    script = textwrap.dedent(
        """
        import sys
        from servicegrid.gateway import create_app
        from servicegrid.settings import load_settings
        app = create_app(load_settings())
        app.openapi()
        heavy = {"torch", "transformers", "onnxruntime", "docling", "sentence_transformers"}
        loaded = sorted(heavy & {name.split(".")[0] for name in sys.modules})
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


async def test_clients_from_settings_name_the_llm_hosts() -> None:
    settings = load_settings(
        llm_urls=("first=http://127.0.0.1:9001", "http://127.0.0.1:9002/v1"),
        openai_api_key="sk-test",
        embedding_service_url="discovery:///embedding-service",
    )
    clients = GatewayClients.from_settings(settings, registry=None)
    try:
        assert clients.llm is not None
        assert [h.name for h in clients.llm.hosts] == ["first", "127.0.0.1:9002"]
        assert all(h.api_key == "sk-test" for h in clients.llm.hosts)
        assert clients.documents is not None
        assert set(clients.model_services()) == {"embedding", "reranking", "documents"}
    finally:
        await clients.aclose()
    without = GatewayClients.from_settings(load_settings(), registry=None)
    assert without.llm is None
    await without.aclose()
