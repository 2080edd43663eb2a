"""API keys, per-key rate limits and the body cap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.gateway.conftest import AppMaker, http

EMBED = {"input": "hello"}


@pytest.fixture
def keyed(make_app: AppMaker) -> httpx.AsyncClient:
    return http(make_app(api_keys=("key-one", "key-two")))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "key-one"},
        {"Authorization": "Basic a2V5"},
    ],
)
async def test_a_missing_or_wrong_key_is_401(
    keyed: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    async with keyed:
        openai_path = await keyed.post("/v1/embeddings", json=EMBED, headers=headers)
        tei_path = await keyed.post("/embed", json={"inputs": "x"}, headers=headers)
        docs_path = await keyed.get("/v1/models", headers=headers)
    assert openai_path.status_code == tei_path.status_code == docs_path.status_code == 401
    assert openai_path.json()["error"]["code"] == "invalid_api_key"
    assert set(tei_path.json()) == {"error", "error_type"}


async def test_a_right_key_is_let_in_and_probes_are_open(keyed: httpx.AsyncClient) -> None:
    async with keyed:
        for key in ("key-one", "key-two"):
            response = await keyed.post(
                "/v1/embeddings", json=EMBED, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200, response.text
        for path in ("/health", "/ready", "/metrics", "/openapi.json", "/docs"):
            assert (await keyed.get(path)).status_code == 200, path
        status = await keyed.get(
            "/v1/api/status/services", headers={"Authorization": "Bearer key-one"}
        )
    assert status.json()["gateway"]["auth"] == "keys"


async def test_a_burst_over_the_limit_is_429_with_retry_after(make_app: AppMaker) -> None:
    app = make_app(api_keys=("a", "b"), rate_limit_rps=0.5, rate_limit_burst=3)
    async with (
        http(app, Authorization="Bearer a") as first,
        http(app, Authorization="Bearer b") as second,
    ):
        answers = [await first.post("/v1/embeddings", json=EMBED) for _ in range(4)]
        other_key = await second.post("/v1/embeddings", json=EMBED)
        probe = await first.get("/health")
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    assert other_key.status_code == 200  # each key has its own bucket
    assert probe.status_code == 200


async def test_an_open_gateway_limits_by_address(make_app: AppMaker) -> None:
    async with http(make_app(rate_limit_rps=0.5, rate_limit_burst=1)) as api:
        first = await api.get("/v1/models")
        second = await api.get("/v1/models")
    assert (first.status_code, second.status_code) == (200, 429)
    assert "Retry-After" in second.headers


async def test_a_body_over_the_cap_is_413(make_app: AppMaker) -> None:
    big = {"input": "x" * (1024 * 1024 + 10)}
    async with http(make_app(gateway_max_body_mb=1)) as api:
        declared = await api.post("/v1/embeddings", json=big)
        tei = await api.post("/embed", json={"inputs": "x" * (1024 * 1024 + 10)})

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the streamed bytes count
            for _ in range(5):
                yield b"x" * (300 * 1024)

        streamed = await api.post(
            "/v1/embeddings", content=chunks(), headers={"content-type": "application/json"}
        )
        small = await api.post("/v1/embeddings", json=EMBED)
    assert declared.status_code == tei.status_code == streamed.status_code == 413
    assert declared.json()["error"]["code"] == "request_too_large"
    assert tei.json()["error_type"] == "validation"
    assert small.status_code == 200
