"""ResilientServiceClient (seed 001) against a real misbehaving HTTP server on loopback.

Every client gets a FakeClock, so backoff sleeps take no wall time and are
asserted exactly from ``clock.sleeps``; the circuit's recovery timeout is
crossed with ``clock.advance``. Nothing here asserts on elapsed wall time.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest.mock import MagicMock, patch

import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient

from servicegrid import ResilientServiceClient, ServiceUnavailable
from servicegrid.errors import (
    ConnectError,
    ConnectionLost,
    DeadlineExceeded,
    InjectedFault,
    ServiceError,
    TransportError,
)
from servicegrid.resilience import FaultInjection
from servicegrid.status import DEFAULT_REGISTRY
from servicegrid.status_routes import STATUS_PATH, create_status_router
from servicegrid.testing import FakeClock
from tests.conftest import ServerProcess
from tests.support.faulty_server import FaultyServer, free_port

NAME = "Chroma Server"
SEED_001_KEYS = {"service", "state", "failure_count", "last_failure", "last_state_change"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
LOGGER = "servicegrid.clients"

MakeClient = Callable[..., ResilientServiceClient]


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FaultyServer]:
    with FaultyServer() as running:
        yield running


@pytest.fixture
def server(shared_server: FaultyServer) -> FaultyServer:
    """conftest's real loopback server, started once per module and reset before each test.

    Starting and stopping uvicorn costs ~0.2 s (more after a slow-mode test);
    one server per module keeps the whole file to a few seconds.
    """
    behaviour = shared_server.behaviour
    with behaviour.lock:
        behaviour.mode, behaviour.status, behaviour.retry_after, behaviour.delay = (
            "ok",
            503,
            None,
            0.0,
        )
        behaviour.script = deque()
        behaviour.hits.clear()
    return shared_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(server: FaultyServer, clock: FakeClock) -> MakeClient:
    """A client for the in-process server, on the fake clock; keyword arguments override."""

    def make(**kwargs: Any) -> ResilientServiceClient:
        options: dict[str, Any] = {"service_name": NAME, "clock": clock}
        options.update(kwargs)
        base_url = options.pop("base_url", server.url)
        return ResilientServiceClient(base_url, **options)

    return make


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def hits(server: FaultyServer, path: str) -> int:
    with server.behaviour.lock:
        return server.behaviour.hits[path]


def fail(status: int, retry_after: str | None = None) -> dict[str, Any]:
    return {"mode": "fail", "status": status, "retry_after": retry_after}


def open_circuit(client: ResilientServiceClient, server: FaultyServer) -> None:
    """Drive ``client`` (max_retries=1) to OPEN with failing calls."""
    server.set(mode="fail", status=503)
    for _ in range(client.circuit_breaker.failure_threshold):
        with pytest.raises(requests.RequestException):
            client.get("/trip")
    assert client.get_status()["state"] == "open"


# --- success ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_each_verb_returns_a_response(make_client: MakeClient, method: str) -> None:
    client = make_client()
    response = getattr(client, method)("/items/1")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["path"] == "/items/1"
    assert body["method"] == method.upper()


@pytest.mark.parametrize("method", ["post", "put"])
def test_json_body_is_sent(make_client: MakeClient, method: str) -> None:
    data = {"query": "vectors", "k": 3, "nested": {"a": [1, 2]}}
    response = getattr(make_client(), method)("/query", json=data)
    assert json.loads(response.json()["echo"]) == data


def test_params_and_headers_pass_through(make_client: MakeClient, server: FaultyServer) -> None:
    client = make_client(headers={"X-Client": "servicegrid"})
    response = client.get("/search", params={"q": "x"}, headers={"X-Extra": "1"})
    assert response.status_code == 200
    assert response.url.endswith("/search?q=x")
    assert response.request.headers["X-Client"] == "servicegrid"
    assert response.request.headers["X-Extra"] == "1"


def test_success_is_logged_in_seed_words(
    make_client: MakeClient, logs: pytest.LogCaptureFixture
) -> None:
    make_client().get("/health")
    assert f"[{NAME}] ✓ GET /health succeeded" in messages(logs)


def test_success_sleeps_never_and_status_stays_clean(
    make_client: MakeClient, clock: FakeClock, server: FaultyServer
) -> None:
    client = make_client()
    client.get("/ping")
    assert clock.sleeps == []
    assert hits(server, "/ping") == 1
    status = client.get_status()
    assert status["state"] == "closed"
    assert status["failure_count"] == 0
    assert status["last_failure"] is None


# --- retries and their delays ------------------------------------------------------------------


def test_two_503_then_ok_succeeds_on_third_attempt(
    make_client: MakeClient,
    server: FaultyServer,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    server.set(script=[fail(503), fail(503)])
    response = make_client().post("/query", json={"q": 1})
    assert response.status_code == 200
    assert hits(server, "/query") == 3
    assert clock.sleeps == [1.0, 2.0]
    lines = messages(logs)
    assert f"[{NAME}] HTTP 503 on attempt 1/3, retrying in 1s..." in lines
    assert f"[{NAME}] HTTP 503 on attempt 2/3, retrying in 2s..." in lines
    assert f"[{NAME}] ✓ POST /query succeeded" in lines


def test_a_success_resets_the_failure_count(make_client: MakeClient, server: FaultyServer) -> None:
    client = make_client()
    server.set(script=[fail(503), fail(503)])
    client.get("/x")
    assert client.get_status()["failure_count"] == 0
    assert client.get_status()["last_failure"] is not None


def test_retry_after_is_honoured(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(script=[fail(503, retry_after="3")])
    assert make_client().get("/x").status_code == 200
    assert clock.sleeps == [3.0]


def test_retry_after_shorter_than_backoff_keeps_backoff(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(script=[fail(503), fail(503, retry_after="1")])
    assert make_client().get("/x").status_code == 200
    assert clock.sleeps == [1.0, 2.0]


def test_without_retry_after_the_delay_is_exponential(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(script=[fail(503), fail(503), fail(503), fail(503)])
    assert make_client(max_retries=5).get("/x").status_code == 200
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize("status", [500, 502, 504, 408, 429])
def test_retryable_statuses_are_retried(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock, status: int
) -> None:
    server.set(script=[fail(status)])
    assert make_client().get("/x").status_code == 200
    assert hits(server, "/x") == 2
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_returned_without_retry(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock, status: int
) -> None:
    server.set(mode="fail", status=status)
    client = make_client()
    response = client.post("/x", json={})
    assert response.status_code == status
    assert response.json() == {"error": "injected", "status": status}
    assert hits(server, "/x") == 1
    assert clock.sleeps == []
    assert client.get_status()["failure_count"] == 0
    assert client.get_status()["last_failure"] is None
    assert client.get_status()["state"] == "closed"


# --- exhausted retries ----------------------------------------------------------------------------


def test_exhausted_http_failure_is_a_request_exception_with_the_response(
    make_client: MakeClient,
    server: FaultyServer,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    server.set(mode="fail", status=503)
    with pytest.raises(requests.RequestException) as caught:
        make_client().post("/query", json={"q": 1})
    error = caught.value
    assert isinstance(error, ServiceError)
    assert not isinstance(error, ServiceUnavailable)
    assert error.response is not None
    assert error.response.status_code == 503
    assert error.details["status_code"] == 503
    assert hits(server, "/query") == 3
    assert clock.sleeps == [1.0, 2.0]
    assert NAME in str(error)
    assert any("giving up" in line for line in messages(logs))


def test_exhausted_500_is_a_requests_http_error(
    make_client: MakeClient, server: FaultyServer
) -> None:
    server.set(mode="fail", status=500)
    with pytest.raises(requests.HTTPError) as caught:
        make_client().get("/x")
    assert caught.value.response is not None
    assert caught.value.response.status_code == 500


def test_exhausted_503_is_a_requests_http_error(
    make_client: MakeClient, server: FaultyServer
) -> None:
    server.set(mode="fail", status=503)
    with pytest.raises(requests.HTTPError):
        make_client().get("/x")


def test_error_response_belongs_to_the_final_attempt(
    make_client: MakeClient, server: FaultyServer
) -> None:
    server.set(script=[fail(503)], mode="close")
    with pytest.raises(requests.ConnectionError) as caught:
        make_client(max_retries=2).get("/x")
    assert isinstance(caught.value, ConnectionLost)
    assert caught.value.response is None


def test_exhausted_408_is_a_timeout(make_client: MakeClient, server: FaultyServer) -> None:
    server.set(mode="fail", status=408)
    with pytest.raises(requests.RequestException) as caught:
        make_client(max_retries=2).get("/x")
    assert isinstance(caught.value, DeadlineExceeded)
    assert caught.value.response.status_code == 408
    assert hits(server, "/x") == 2


def test_connection_refused_is_a_requests_connection_error(clock: FakeClock) -> None:
    client = ResilientServiceClient(
        f"http://127.0.0.1:{free_port()}", service_name=NAME, clock=clock
    )
    with pytest.raises(requests.ConnectionError) as caught:
        client.get("/x")
    assert isinstance(caught.value, ConnectError)
    assert isinstance(caught.value, ServiceError)
    assert clock.sleeps == [1.0, 2.0]
    assert client.get_status()["failure_count"] == 3


def test_connection_refused_is_logged_as_connection_failed(
    clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    client = ResilientServiceClient(
        f"http://127.0.0.1:{free_port()}", service_name=NAME, clock=clock, max_retries=2
    )
    with pytest.raises(requests.ConnectionError):
        client.get("/x")
    assert f"[{NAME}] Connection failed on attempt 1/2, retrying in 1s..." in messages(logs)


def test_slow_server_beyond_timeout_is_a_requests_timeout(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="slow", delay=2.0)
    client = make_client(max_retries=2, timeout=0.3)
    with pytest.raises(requests.Timeout) as caught:
        client.get("/slow")
    assert isinstance(caught.value, DeadlineExceeded)
    assert hits(server, "/slow") == 2
    assert clock.sleeps == [1.0]


def test_per_call_timeout_overrides_the_client_timeout(
    make_client: MakeClient, server: FaultyServer
) -> None:
    server.set(mode="slow", delay=2.0)
    with pytest.raises(requests.Timeout):
        make_client(max_retries=1, timeout=30).get("/slow", timeout=0.3)


def test_dropped_connection_is_a_request_exception(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="close")
    with pytest.raises(requests.RequestException) as caught:
        make_client().get("/drop")
    assert isinstance(caught.value, TransportError)
    assert hits(server, "/drop") == 3
    assert clock.sleeps == [1.0, 2.0]


# --- circuit breaker ------------------------------------------------------------------------------


def test_circuit_opens_after_threshold_failed_attempts(
    make_client: MakeClient,
    server: FaultyServer,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    client = make_client()  # seed defaults: 3 attempts per call, threshold 5
    server.set(mode="fail", status=503)

    with pytest.raises(requests.RequestException) as first:
        client.get("/x")
    assert not isinstance(first.value, ServiceUnavailable)
    assert hits(server, "/x") == 3
    assert client.get_status() | {"last_failure": None, "last_state_change": None} == {
        "service": NAME,
        "state": "closed",
        "failure_count": 3,
        "last_failure": None,
        "last_state_change": None,
    }

    # attempts 4 and 5 fail and open the circuit: this call ends at once with its real
    # error instead of sleeping toward an attempt the open circuit would refuse
    with pytest.raises(requests.HTTPError) as second:
        client.get("/x")
    assert not isinstance(second.value, ServiceUnavailable)
    assert second.value.response.status_code == 503
    assert hits(server, "/x") == 5
    assert clock.sleeps == [1.0, 2.0, 1.0]
    assert client.get_status()["state"] == "open"
    assert client.get_status()["failure_count"] == 5
    assert f"[{NAME}] Circuit breaker OPEN (threshold reached)" in messages(logs)

    before = hits(server, "/x")
    for _ in range(3):
        with pytest.raises(ServiceUnavailable) as rejected:
            client.get("/x")
        assert rejected.value.retry_after is not None
    assert hits(server, "/x") == before


def test_open_circuit_rejects_without_touching_the_server(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    client = make_client(max_retries=1, failure_threshold=2)
    open_circuit(client, server)
    server.set(mode="ok")
    sleeps = list(clock.sleeps)
    with pytest.raises(ServiceUnavailable) as caught:
        client.post("/other", json={"a": 1})
    assert hits(server, "/other") == 0
    assert clock.sleeps == sleeps
    # seed 001 handlers that only know requests still catch it
    assert isinstance(caught.value, requests.RequestException)


def test_half_open_success_closes_the_circuit(
    make_client: MakeClient,
    server: FaultyServer,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    client = make_client(max_retries=1, failure_threshold=2, recovery_timeout=60)
    open_circuit(client, server)
    server.set(mode="ok")

    clock.advance(59.0)
    with pytest.raises(ServiceUnavailable):
        client.get("/probe")
    assert hits(server, "/probe") == 0

    clock.advance(1.0)
    assert client.get("/probe").status_code == 200
    assert hits(server, "/probe") == 1
    status = client.get_status()
    assert status["state"] == "closed"
    assert status["failure_count"] == 0
    assert f"[{NAME}] Circuit breaker CLOSED (service recovered)" in messages(logs)
    assert client.get("/probe").status_code == 200


def test_half_open_failure_reopens_the_circuit(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    client = make_client(max_retries=1, failure_threshold=2, recovery_timeout=60)
    open_circuit(client, server)
    clock.advance(60.0)
    assert client.get_status()["state"] == "half_open"

    with pytest.raises(requests.RequestException) as caught:
        client.get("/probe")
    assert not isinstance(caught.value, ServiceUnavailable)
    assert hits(server, "/probe") == 1
    assert client.get_status()["state"] == "open"

    with pytest.raises(ServiceUnavailable):
        client.get("/probe")
    assert hits(server, "/probe") == 1


def test_half_open_admits_a_single_trial(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    client = make_client(max_retries=1, failure_threshold=1, recovery_timeout=30)
    open_circuit(client, server)
    clock.advance(30.0)
    server.set(mode="slow", delay=0.5)

    with ThreadPoolExecutor(max_workers=1) as pool:
        trial = pool.submit(client.get, "/probe")
        deadline = time.monotonic() + 10
        while hits(server, "/probe") == 0:
            assert time.monotonic() < deadline, "the trial call never reached the server"
            assert not trial.done(), trial.exception()
            time.sleep(0.01)
        # the trial is in flight: everybody else is still refused
        with pytest.raises(ServiceUnavailable):
            client.get("/probe")
        assert trial.result(timeout=10).status_code == 200

    assert hits(server, "/probe") == 1
    assert client.get_status()["state"] == "closed"


def test_seed_handler_shape_works_verbatim(make_client: MakeClient, server: FaultyServer) -> None:
    client = make_client(max_retries=1, failure_threshold=2)

    def search(data: dict[str, Any]) -> Any:
        try:
            response = client.post("/query", json=data)
            results = response.json()
        except ServiceUnavailable:
            results = "fallback"
        except requests.RequestException as e:
            return {"error": "Service unavailable", "detail": str(e)}, 503
        return results

    assert search({"q": 1})["ok"] is True
    server.set(mode="fail", status=503)
    answer, code = search({"q": 1})
    assert code == 503
    assert answer["error"] == "Service unavailable"
    assert NAME in answer["detail"]
    search({"q": 1})  # second failed attempt: the circuit opens
    assert search({"q": 1}) == "fallback"


def test_seed_fail_open_pattern(make_client: MakeClient, server: FaultyServer) -> None:
    client = make_client(max_retries=1, failure_threshold=1)
    server.set(mode="fail", status=500)
    outcomes = []
    for _ in range(2):
        try:
            client.post("/query", json={})
        except (ServiceUnavailable, requests.RequestException) as e:
            outcomes.append(type(e).__name__)
    assert outcomes == ["InternalError", "ServiceUnavailable"]


# --- status JSON ----------------------------------------------------------------------------------


def test_status_json_has_exactly_the_seed_keys(
    make_client: MakeClient, server: FaultyServer
) -> None:
    client = make_client(max_retries=1, failure_threshold=2)
    status = client.get_status()
    assert set(status) == SEED_001_KEYS
    assert status["service"] == NAME
    assert status["state"] == "closed"
    assert status["failure_count"] == 0
    assert status["last_failure"] is None
    assert ISO_UTC.match(status["last_state_change"])
    json.dumps(status)

    server.set(mode="fail", status=503)
    with pytest.raises(requests.RequestException):
        client.get("/x")
    status = client.get_status()
    assert set(status) == SEED_001_KEYS
    assert status["failure_count"] == 1
    assert ISO_UTC.match(status["last_failure"])

    with pytest.raises(requests.RequestException):
        client.get("/x")
    status = client.get_status()
    assert status["state"] == "open"
    assert status["state"] in {"closed", "open", "half_open"}
    assert ISO_UTC.match(status["last_state_change"])


def test_status_timestamps_follow_the_injected_clock(
    make_client: MakeClient, server: FaultyServer, clock: FakeClock
) -> None:
    client = make_client(max_retries=1, failure_threshold=1)
    assert client.get_status()["last_state_change"] == "2025-11-15T10:30:45Z"
    clock.advance(87.0)
    server.set(mode="fail", status=503)
    with pytest.raises(requests.RequestException):
        client.get("/x")
    status = client.get_status()
    assert status["last_failure"] == "2025-11-15T10:32:12Z"
    assert status["last_state_change"] == "2025-11-15T10:32:12Z"


def test_service_name_defaults_to_host_and_port(server: FaultyServer, clock: FakeClock) -> None:
    client = ResilientServiceClient(server.url + "/", clock=clock)
    assert client.base_url == server.url
    assert client.get_status()["service"] == f"127.0.0.1:{server.port}"
    assert client.get("health").json()["path"] == "/health"


# --- presets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        ("for_slow_operations", (3, 15.0, 60.0)),
        ("for_fast_operations", (2, 5.0, 60.0)),
        ("for_complex_operations", (3, 30.0, 90.0)),
    ],
)
def test_presets(server: FaultyServer, factory: str, expected: tuple[int, float, float]) -> None:
    client = getattr(ResilientServiceClient, factory)(server.url, service_name=NAME)
    assert isinstance(client, ResilientServiceClient)
    got = (client.max_retries, client.timeout, client.circuit_breaker.recovery_timeout)
    assert got == expected
    assert client.retry.attempts == expected[0]
    assert client.circuit_breaker.failure_threshold == 5


def test_presets_accept_overrides(server: FaultyServer, clock: FakeClock) -> None:
    client = ResilientServiceClient.for_fast_operations(
        server.url, service_name=NAME, timeout=1, clock=clock
    )
    assert (client.max_retries, client.timeout) == (2, 1.0)
    assert client.get("/x").status_code == 200


def test_defaults_match_the_seed(server: FaultyServer) -> None:
    client = ResilientServiceClient(server.url, service_name=NAME)
    assert client.max_retries == 3
    assert client.timeout == 10.0
    assert client.circuit_breaker.failure_threshold == 5
    assert client.circuit_breaker.recovery_timeout == 60.0


# --- the seed's testing idiom ---------------------------------------------------------------------


def test_seed_mock_success_idiom(make_client: MakeClient, server: FaultyServer) -> None:
    client = make_client()
    with patch("requests.request") as mock:
        mock.return_value = MagicMock(status_code=200)
        response = client.post("/endpoint")
        assert response.status_code == 200
    assert mock.call_count == 1
    args, kwargs = mock.call_args
    assert args == ("POST", f"{server.url}/endpoint")
    assert kwargs["timeout"] == 10.0
    assert hits(server, "/endpoint") == 0


def test_seed_mock_failure_idiom_retries_then_raises(
    make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client()
    with patch("requests.request") as mock:
        mock.side_effect = requests.ConnectionError("refused")
        with pytest.raises(requests.ConnectionError):
            client.post("/endpoint")
    assert mock.call_count == 3
    assert clock.sleeps == [1.0, 2.0]


# --- a killed server ------------------------------------------------------------------------------


def test_killed_server_opens_the_circuit_and_recovery_closes_it(
    server_process: ServerProcess, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    client = ResilientServiceClient(
        server_process.url,
        service_name=NAME,
        failure_threshold=3,
        recovery_timeout=60,
        clock=clock,
    )
    assert client.get("/query").json()["ok"] is True

    server_process.kill()
    with pytest.raises(requests.ConnectionError) as caught:
        client.get("/query")
    assert isinstance(caught.value, ConnectError)
    assert client.get_status()["state"] == "open"
    with pytest.raises(ServiceUnavailable):
        client.get("/query")

    server_process.start()  # same port
    with pytest.raises(ServiceUnavailable):
        client.get("/query")  # still cooling down: the live server is not asked
    clock.advance(60.0)
    assert client.get("/query").json()["ok"] is True
    assert client.get_status()["state"] == "closed"
    assert client.get_status()["failure_count"] == 0
    lines = messages(logs)
    assert f"[{NAME}] Circuit breaker OPEN (threshold reached)" in lines
    assert f"[{NAME}] Circuit breaker CLOSED (service recovered)" in lines


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url", ["", "   ", "chroma:6003", "ftp://x", "http://", None, "http://host:99999", 6003]
)
def test_invalid_base_url(base_url: Any) -> None:
    with pytest.raises(ValueError, match="base_url"):
        ResilientServiceClient(base_url, service_name=NAME)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"failure_threshold": -1}, "failure_threshold"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"max_retries": 0}, "max_retries"),
        ({"max_retries": -3}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"recovery_timeout": -1}, "recovery_timeout"),
    ],
)
def test_invalid_arguments_name_themselves(
    server: FaultyServer, kwargs: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        ResilientServiceClient(server.url, service_name=NAME, **kwargs)
    assert NAME not in DEFAULT_REGISTRY


def test_json_on_a_non_json_answer_names_service_and_content_type(
    make_client: MakeClient, server: FaultyServer
) -> None:
    server.set(mode="text")
    response = make_client().get("/page")
    assert response.status_code == 200
    with pytest.raises(requests.JSONDecodeError) as caught:
        response.json()
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert NAME in message
    assert "text/html" in message


@pytest.mark.parametrize("path", ["http://evil.example/x", "https://127.0.0.1/x"])
def test_a_full_url_as_path_is_refused(
    make_client: MakeClient, server: FaultyServer, path: str
) -> None:
    with pytest.raises(ValueError, match="path"):
        make_client().get(path)
    assert server.behaviour.total_hits == 0


# --- registration ---------------------------------------------------------------------------------


def test_client_registers_and_is_served_by_the_status_route(
    make_client: MakeClient, server: FaultyServer
) -> None:
    client = make_client(max_retries=1, failure_threshold=1)
    other = make_client(service_name="Filesystem")
    assert DEFAULT_REGISTRY.reporters()[NAME] is client
    assert "Filesystem" in DEFAULT_REGISTRY

    server.set(mode="fail", status=503)
    with pytest.raises(requests.RequestException):
        client.get("/x")

    app = FastAPI()
    app.include_router(create_status_router())
    with TestClient(app) as http:
        answer = http.get(STATUS_PATH)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body[NAME]) == SEED_001_KEYS
    assert body[NAME] == client.get_status()
    assert body[NAME]["state"] == "open"
    assert body["Filesystem"] == other.get_status()
    assert STATUS_PATH == "/v1/api/status/services"


def test_registry_none_does_not_register(make_client: MakeClient) -> None:
    make_client(service_name="private", registry=None)
    assert "private" not in DEFAULT_REGISTRY


# --- threads --------------------------------------------------------------------------------------


def test_one_client_is_safe_to_share_between_threads(
    make_client: MakeClient, server: FaultyServer
) -> None:
    client = make_client()
    barrier = threading.Barrier(8)

    def call(i: int) -> int:
        barrier.wait(timeout=10)
        return int(client.get(f"/t/{i}").status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(call, range(8)))
    assert codes == [200] * 8
    assert server.behaviour.total_hits == 8


def test_injected_faults_look_like_a_flaky_service_to_retry_and_breaker(
    server: FaultyServer, clock: FakeClock
) -> None:
    faults = FaultInjection(failure_rate=1.0, clock=clock)
    client = ResilientServiceClient(
        server.url,
        service_name="flaky",
        failure_threshold=4,
        clock=clock,
        extra_policies=[faults],
        registry=None,
    )
    with pytest.raises(requests.RequestException) as exhausted:
        client.get("/x")
    assert isinstance(exhausted.value, InjectedFault)
    assert hits(server, "/x") == 0  # every attempt failed before it reached the network
    assert clock.sleeps == [1.0, 2.0]
    with pytest.raises(InjectedFault):
        client.get("/x")
    assert client.get_status()["state"] == "open"
    with pytest.raises(ServiceUnavailable):
        client.get("/x")

    faults.enabled = False
    clock.advance(60.0)
    assert client.get("/x").status_code == 200
    assert client.get_status()["state"] == "closed"
