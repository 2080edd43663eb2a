"""ServiceIntegrationClient (seed 003) against the real integration service and a faulty server.

The integration app runs on uvicorn in a background thread on a free loopback port, on a
SQLite file under ``tmp_path``. Retry and breaker tests run against
``tests.support.faulty_server`` with a FakeClock: backoff takes no wall time and the delays
are read back from ``clock.sleeps``. Nothing here asserts on elapsed wall time.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from servicegrid.clients import (
    INTEGRATION_RETRY_POLICIES,
    DeferredRead,
    OperationRetryPolicy,
    OperationType,
    ServiceIntegrationClient,
    ServiceIntegrationClientSync,
    WorkflowExecution,
)
from servicegrid.errors import (
    ConflictError,
    ConnectError,
    InternalError,
    MaxRetriesExceededError,
    ResourceNotFoundError,
    ServiceUnavailable,
    ServiceUnavailableError,
    ValidationError,
)
from servicegrid.integration import create_app
from servicegrid.resilience import CircuitBreakerConfig, CircuitState
from servicegrid.testing import FakeClock
from tests.integration.conftest import make_service
from tests.support.faulty_server import FaultyServer, free_port
from tests.support.threaded_server import ThreadedServer

NAME = "service-integration"


# ---- servers ----------------------------------------------------------------------------


def _uvicorn(app: ASGIApp, *, lifespan: Literal["on", "off"] = "on") -> ThreadedServer:
    """An ASGI app on a real uvicorn server in a background thread, on a free loopback port."""
    return ThreadedServer(
        app,
        name="uvicorn",
        lifespan=lifespan,
        log_level="warning",
        start_timeout=20,
        stop_timeout=10,
    )


def _api_paths() -> dict[str, set[str]]:
    """``{path: methods}`` the integration app in this tree serves (no database needed)."""
    app = create_app("sqlite+aiosqlite:///:memory:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate operation ids of PUT/PATCH pairs
        paths = app.openapi()["paths"]
    return {path: {method.upper() for method in item} for path, item in paths.items()}


_PATHS = _api_paths()


def _has_route(path: str, method: str = "GET") -> bool:
    return method in _PATHS.get(f"/api{path}", set())


needs_workflows = pytest.mark.skipif(
    not (
        _has_route("/workflows", "POST") and _has_route("/workflows/{workflow_id}/execute", "POST")
    ),
    reason="the workflow routes are not in this tree yet",
)
needs_executions = pytest.mark.skipif(
    not _has_route("/executions/{execution_id}"),
    reason="the execution routes are not in this tree yet",
)
needs_actions = pytest.mark.skipif(
    not _has_route("/services/{service_id}/actions/{action}/execute", "POST"),
    reason="the action route is not in this tree yet",
)
needs_service_health = pytest.mark.skipif(
    not _has_route("/services/{service_id}/health"),
    reason="the service health route is not in this tree yet",
)


@pytest.fixture
def api_url(tmp_path: Path) -> Iterator[str]:
    """The integration service's base URL (``.../api``), on a fresh SQLite file."""
    app = create_app(f"sqlite+aiosqlite:///{tmp_path}/i.db", engine_poll_interval=0.05)
    with _uvicorn(app) as running:
        yield f"{running.url}/api"


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[ServiceIntegrationClient]:
    async with ServiceIntegrationClient(api_url, timeout=10) as client:
        yield client


@pytest.fixture
def api_sync(api_url: str) -> Iterator[ServiceIntegrationClientSync]:
    with ServiceIntegrationClientSync(api_url, timeout=10) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Recording(httpx.AsyncHTTPTransport):
    """The real async transport, keeping every request it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await super().handle_async_request(request)


class RecordingSync(httpx.HTTPTransport):
    """The real sync transport, keeping every request it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


# ---- services -----------------------------------------------------------------------------


async def test_register_get_update_deregister(api: ServiceIntegrationClient) -> None:
    spec = make_service("text-extraction")
    service = await api.register_service(**spec)
    assert type(service) is dict
    assert service["name"] == "text-extraction"
    assert service["status"] == "ACTIVE"
    assert service["actions"][0]["name"] == "extract"
    assert service["metadata"] == spec["metadata"]

    fetched = await api.get_service(service_id=service["id"])
    assert type(fetched) is dict
    assert fetched == service
    assert (await api.get_service("text-extraction"))["id"] == service["id"]  # by name too

    updated = await api.update_service(
        service_id=service["id"],
        name="text-extraction-v2",
        description="Improved text extraction service",
        endpoint="http://text-extraction-service-v2:8000/api",
        status="INACTIVE",
    )
    assert updated["name"] == "text-extraction-v2"
    assert updated["endpoint"] == "http://text-extraction-service-v2:8000/api"
    assert updated["status"] == "INACTIVE"
    assert updated["actions"] == service["actions"]  # not given, so not sent, so unchanged
    assert updated["metadata"] == service["metadata"]

    removed = await api.deregister_service(service_id=service["id"])
    assert removed == {"id": service["id"], "name": "text-extraction-v2", "deregistered": True}
    with pytest.raises(ResourceNotFoundError):
        await api.get_service(service["id"])


async def test_list_services_filters_and_pages(api: ServiceIntegrationClient) -> None:
    for index in range(5):
        await api.register_service(**make_service(f"svc-{index}"))
    await api.update_service("svc-1", status="INACTIVE")
    await api.update_service("svc-3", status="INACTIVE")

    everything = await api.get_services()
    assert everything["total"] == 5
    assert len(everything["items"]) == 5

    active = await api.get_services(status="ACTIVE")
    assert {item["name"] for item in active["items"]} == {"svc-0", "svc-2", "svc-4"}
    inactive = await api.get_services(status="INACTIVE")
    assert {item["name"] for item in inactive["items"]} == {"svc-1", "svc-3"}

    page_2 = await api.get_services(page=2, per_page=2)
    assert (page_2["page"], page_2["per_page"], page_2["total"], page_2["pages"]) == (2, 2, 5, 3)
    assert len(page_2["items"]) == 2

    # the seed's pagination loop, un-awaited, until an empty page
    seen: list[str] = []
    page = 1
    while True:
        services = api.get_services(page=page, per_page=2)
        if not services["items"]:
            break
        seen.extend(service["name"] for service in services["items"])
        page += 1
    assert sorted(seen) == [f"svc-{index}" for index in range(5)]


async def test_update_sends_only_the_given_fields(api_url: str) -> None:
    recording = Recording()
    async with ServiceIntegrationClient(api_url, transport=recording) as client:
        await client.register_service(**make_service("svc"))
        await client.update_service("svc", description="new")
    patch = recording.requests[-1]
    assert (patch.method, patch.url.path) == ("PATCH", "/api/services/svc")
    assert json.loads(patch.content) == {"description": "new"}


# ---- typed errors -------------------------------------------------------------------------


async def test_422_names_each_field(api: ServiceIntegrationClient) -> None:
    with pytest.raises(ValidationError) as caught:
        await api.register_service(
            name="not a valid name",
            endpoint="ftp://nowhere",
            actions=[{"name": "extract", "input_schema": {"type": 3}, "output_schema": {}}],
        )
    fields = {problem["field"] for problem in caught.value.validation_errors}
    assert fields == {"name", "endpoint", "actions.0.input_schema"}
    assert all(problem["message"] for problem in caught.value.validation_errors)
    assert caught.value.service == NAME


async def test_422_for_a_missing_field_and_for_query_parameters(
    api: ServiceIntegrationClient,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await api.register_service(name="no-endpoint")
    assert caught.value.validation_errors == [
        {"field": "endpoint", "message": "Field required", "type": "missing"}
    ]

    with pytest.raises(ValidationError) as caught:
        await api.get_services(per_page=1000)
    assert [p["field"] for p in caught.value.validation_errors] == ["per_page"]

    with pytest.raises(ValidationError) as caught:
        api.get_services(page=0)["items"]  # the un-awaited path raises the same error
    assert [p["field"] for p in caught.value.validation_errors] == ["page"]


async def test_404_carries_the_resource(api: ServiceIntegrationClient) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        await api.get_service(service_id="456")
    assert (caught.value.resource_type, caught.value.resource_id) == ("service", "456")

    with pytest.raises(ResourceNotFoundError) as caught:
        await api.update_service("456", description="x")
    assert (caught.value.resource_type, caught.value.resource_id) == ("service", "456")

    with pytest.raises(ResourceNotFoundError) as caught:
        await api.deregister_service("456")
    assert caught.value.resource_id == "456"


async def test_409_on_a_taken_name(api: ServiceIntegrationClient) -> None:
    first = await api.register_service(**make_service("text-extraction"))
    await api.register_service(**make_service("other"))
    again = await api.register_service(**make_service("text-extraction"))
    assert again == first  # the same service again: it is returned
    with pytest.raises(ConflictError) as caught:
        await api.register_service(**make_service("text-extraction", description="another"))
    assert "already exists" in str(caught.value)
    with pytest.raises(ConflictError):
        await api.update_service("other", name="text-extraction")


async def test_client_errors_are_not_retried_and_do_not_trip_the_breaker(
    api_url: str, clock: FakeClock
) -> None:
    config = CircuitBreakerConfig(failure_threshold=1)
    async with ServiceIntegrationClient(
        api_url, clock=clock, circuit_breaker_config=config
    ) as client:
        for _ in range(3):
            with pytest.raises(ResourceNotFoundError):
                await client.get_service("missing")
        assert clock.sleeps == []
        assert client.circuit_breaker.state is CircuitState.CLOSED


def test_bad_ids_are_refused_before_sending() -> None:
    client = ServiceIntegrationClientSync("http://127.0.0.1:9/api")
    with pytest.raises(ValueError, match="service_id"):
        client.get_service("")
    with pytest.raises(ValueError, match="workflow_id"):
        client.delete_workflow(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_url"):
        ServiceIntegrationClient("localhost:8005")


async def test_ids_are_escaped_into_one_path_segment(api_url: str) -> None:
    recording = Recording()
    async with ServiceIntegrationClient(api_url, transport=recording) as client:
        with pytest.raises(ResourceNotFoundError) as caught:
            await client.get_service("a/b?c")
    assert recording.requests[0].url.raw_path == b"/api/services/a%2Fb%3Fc"
    assert caught.value.resource_id == "a/b?c"


# ---- awaited and un-awaited reads ---------------------------------------------------------


async def test_reads_can_be_awaited(api: ServiceIntegrationClient) -> None:
    service = await api.register_service(**make_service("svc"))
    read = api.get_service(service_id=service["id"])
    assert isinstance(read, DeferredRead)
    assert not read.done
    assert await read == service
    assert read.done
    services = await api.get_services()
    assert type(services) is dict
    assert services["items"] == [service]
    health = await api.get_integration_health()
    assert health["status"] == "healthy"


async def test_reads_work_without_await_as_the_seed_writes_them(
    api: ServiceIntegrationClient,
) -> None:
    service = await api.register_service(**make_service("text-extraction"))

    found = api.get_service(service_id="text-extraction")
    assert found["id"] == service["id"]
    assert found.get("name") == "text-extraction"
    assert found.get("nope", "default") == "default"
    assert "endpoint" in found
    assert "nope" not in found
    assert found == service
    assert len(found) == len(service)
    assert set(found) == set(service)
    assert dict(found) == service
    assert found.result() == service

    services = api.get_services()
    service_map = {item["name"]: item for item in services["items"]}
    assert list(service_map) == ["text-extraction"]

    health = api.get_integration_health()
    assert health["status"] == "healthy"
    assert health["checks"]["database"]["status"] == "healthy"


async def test_an_unawaited_read_is_sent_once(api_url: str) -> None:
    recording = RecordingSync()
    async with ServiceIntegrationClient(api_url, sync_transport=recording) as client:
        await client.register_service(**make_service("svc"))
        read = client.get_services()
        assert recording.requests == []  # nothing is sent until it is used
        assert read["total"] == 1
        assert read["items"][0]["name"] == "svc"
        assert "items" in read
        assert len(read) == 5
        assert read == read.result()
        assert await read is read.result()  # awaiting later returns the same answer
        assert len(recording.requests) == 1
        assert "not sent" in repr(client.get_service("svc"))


async def test_an_unused_read_sends_nothing_and_warns_about_nothing(api_url: str) -> None:
    recording = RecordingSync()
    transport = Recording()
    async with ServiceIntegrationClient(
        api_url, transport=transport, sync_transport=recording
    ) as client:
        client.get_services()
        client.get_integration_health()
    assert recording.requests == []
    assert transport.requests == []


async def test_a_closed_client_refuses_calls(api_url: str) -> None:
    client = ServiceIntegrationClient(api_url)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_services()
    with pytest.raises(RuntimeError, match="closed"):
        client.get_services()["items"]
    await client.aclose()  # idempotent


# ---- the sync twin ------------------------------------------------------------------------


def test_sync_client_services(api_sync: ServiceIntegrationClientSync) -> None:
    service = api_sync.register_service(**make_service("text-extraction"))
    assert api_sync.get_service(service["id"]) == service
    assert api_sync.get_services()["total"] == 1
    assert api_sync.get_services(status="INACTIVE")["items"] == []
    updated = api_sync.update_service(service["id"], status="INACTIVE")
    assert updated["status"] == "INACTIVE"
    assert api_sync.get_services(status="INACTIVE", page=1, per_page=10)["total"] == 1
    assert api_sync.get_integration_health()["status"] == "healthy"
    assert api_sync.deregister_service(service["id"])["deregistered"] is True


def test_sync_client_errors(api_sync: ServiceIntegrationClientSync) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        api_sync.get_service("456")
    assert (missing.value.resource_type, missing.value.resource_id) == ("service", "456")
    api_sync.register_service(**make_service("svc"))
    with pytest.raises(ConflictError):
        api_sync.register_service(**make_service("svc", description="another"))
    with pytest.raises(ValidationError) as invalid:
        api_sync.update_service("svc", endpoint="not a url")
    assert [p["field"] for p in invalid.value.validation_errors] == ["endpoint"]


def test_sync_client_closes(api_url: str) -> None:
    with ServiceIntegrationClientSync(api_url) as client:
        assert client.get_services()["total"] == 0
    with pytest.raises(RuntimeError, match="closed"):
        client.get_services()


# ---- retry policy, per operation type -----------------------------------------------------


AsyncOp = Callable[[ServiceIntegrationClient], Awaitable[Any]]
SyncOp = Callable[[ServiceIntegrationClientSync], Any]

# (operation type, the async call, the same call on the sync twin)
OPERATIONS: dict[str, tuple[OperationType, AsyncOp, SyncOp]] = {
    "register_service": (
        OperationType.CREATE,
        lambda c: c.register_service(name="svc", endpoint="http://svc:8000/api"),
        lambda c: c.register_service(name="svc", endpoint="http://svc:8000/api"),
    ),
    "create_workflow": (
        OperationType.CREATE,
        lambda c: c.create_workflow(name="wf", steps=[{"id": "a"}]),
        lambda c: c.create_workflow(name="wf", steps=[{"id": "a"}]),
    ),
    "execute_workflow": (
        OperationType.CREATE,
        lambda c: c.execute_workflow("wf", {"x": 1}),
        lambda c: c.execute_workflow("wf", {"x": 1}),
    ),
    "execute_service_action": (
        OperationType.CREATE,
        lambda c: c.execute_service_action("svc", "extract", {"x": 1}),
        lambda c: c.execute_service_action("svc", "extract", {"x": 1}),
    ),
    "update_service": (
        OperationType.UPDATE,
        lambda c: c.update_service("svc", description="d"),
        lambda c: c.update_service("svc", description="d"),
    ),
    "update_workflow": (
        OperationType.UPDATE,
        lambda c: c.update_workflow("wf", status="ACTIVE"),
        lambda c: c.update_workflow("wf", status="ACTIVE"),
    ),
    "deregister_service": (
        OperationType.DELETE,
        lambda c: c.deregister_service("svc"),
        lambda c: c.deregister_service("svc"),
    ),
    "delete_workflow": (
        OperationType.DELETE,
        lambda c: c.delete_workflow("wf"),
        lambda c: c.delete_workflow("wf"),
    ),
    "get_service": (
        OperationType.READ,
        lambda c: c.get_service("svc"),
        lambda c: c.get_service("svc"),
    ),
    "get_workflows": (
        OperationType.READ,
        lambda c: c.get_workflows(status="ACTIVE"),
        lambda c: c.get_workflows(status="ACTIVE"),
    ),
    "get_workflow_execution_status": (
        OperationType.READ,
        lambda c: c.get_workflow_execution_status("789"),
        lambda c: c.get_workflow_execution_status("789"),
    ),
}

EXPECTED_ATTEMPTS = {
    OperationType.CREATE: 4,
    OperationType.UPDATE: 4,
    OperationType.DELETE: 3,
    OperationType.READ: 3,
}


def test_the_seed_policies() -> None:
    policies = INTEGRATION_RETRY_POLICIES
    assert policies[OperationType.CREATE] == OperationRetryPolicy(3, 0.5, 4.0)
    assert policies[OperationType.UPDATE] == OperationRetryPolicy(3, 0.5, 4.0)
    assert policies[OperationType.DELETE] == OperationRetryPolicy(2, 1.0, 4.0)
    assert policies[OperationType.READ] == OperationRetryPolicy(2, 0.5, 2.0)
    for op, attempts in EXPECTED_ATTEMPTS.items():
        assert policies[op].attempts == attempts


def _assert_backoff(sleeps: list[float], policy: OperationRetryPolicy) -> None:
    """Retry n waits b/2..b with b = min(max_delay, base_delay * 2**(n-1))."""
    assert len(sleeps) == policy.retries
    for n, slept in enumerate(sleeps, start=1):
        base = min(policy.max_delay, policy.base_delay * 2 ** (n - 1))
        assert base / 2 <= slept <= base, (n, slept, base)


def _assert_exhausted(error: MaxRetriesExceededError, attempts: int) -> None:
    assert error.attempts == attempts
    assert isinstance(error.last_error, ServiceUnavailableError)
    assert error.last_error.service_name == NAME
    assert "503" in str(error.last_error)
    assert error.__cause__ is error.last_error


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_async_retries_per_operation_type(
    name: str, server: FaultyServer, clock: FakeClock
) -> None:
    op, call, _ = OPERATIONS[name]
    attempts = EXPECTED_ATTEMPTS[op]
    server.set(mode="fail", status=503)
    async with ServiceIntegrationClient(f"{server.url}/api", clock=clock) as client:
        with pytest.raises(MaxRetriesExceededError) as caught:
            await call(client)
    _assert_exhausted(caught.value, attempts)
    assert server.behaviour.total_hits == attempts
    _assert_backoff(clock.sleeps, INTEGRATION_RETRY_POLICIES[op])


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_sync_retries_per_operation_type(name: str, server: FaultyServer, clock: FakeClock) -> None:
    op, _, call = OPERATIONS[name]
    attempts = EXPECTED_ATTEMPTS[op]
    server.set(mode="fail", status=503)
    with (
        ServiceIntegrationClientSync(f"{server.url}/api", clock=clock) as client,
        pytest.raises(MaxRetriesExceededError) as caught,
    ):
        call(client)
    _assert_exhausted(caught.value, attempts)
    assert server.behaviour.total_hits == attempts
    _assert_backoff(clock.sleeps, INTEGRATION_RETRY_POLICIES[op])


async def test_unawaited_reads_retry_with_the_read_policy(
    server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="fail", status=502)
    async with ServiceIntegrationClient(f"{server.url}/api", clock=clock) as client:
        with pytest.raises(MaxRetriesExceededError) as caught:
            client.get_workflow(workflow_id="123")["name"]
    assert caught.value.attempts == 3
    assert server.behaviour.total_hits == 3
    _assert_backoff(clock.sleeps, INTEGRATION_RETRY_POLICIES[OperationType.READ])


async def test_a_transient_failure_then_success(server: FaultyServer, clock: FakeClock) -> None:
    server.set(script=[{"mode": "fail", "status": 503}, {"mode": "fail", "status": 504}])
    async with ServiceIntegrationClient(f"{server.url}/api", clock=clock) as client:
        answer = await client.get_services()
    assert answer["ok"] is True
    assert server.behaviour.total_hits == 3
    assert len(clock.sleeps) == 2


async def test_429_honours_retry_after(server: FaultyServer, clock: FakeClock) -> None:
    server.set(script=[{"mode": "fail", "status": 429, "retry_after": "3"}])
    async with ServiceIntegrationClient(f"{server.url}/api", clock=clock) as client:
        answer = await client.update_workflow("wf", description="d")
    assert answer["ok"] is True
    assert clock.sleeps == [3.0]


async def test_a_retry_after_beyond_the_cap_ends_the_call(
    server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="fail", status=503, retry_after="3600")
    async with ServiceIntegrationClient(f"{server.url}/api", clock=clock) as client:
        with pytest.raises(MaxRetriesExceededError) as caught:
            await client.get_services()
    assert caught.value.attempts == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(("status", "error"), [(500, InternalError), (404, ResourceNotFoundError)])
async def test_other_failures_are_not_retried(
    status: int, error: type[Exception], server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="fail", status=status)
    async with ServiceIntegrationClient(f"{server.url}/api", clock=clock) as client:
        with pytest.raises(error):
            await client.register_service(name="svc", endpoint="http://svc/api")
    assert server.behaviour.total_hits == 1
    assert clock.sleeps == []


async def test_connection_errors_are_retried(clock: FakeClock) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api"
    async with ServiceIntegrationClient(closed, timeout=2, clock=clock) as client:
        with pytest.raises(MaxRetriesExceededError) as caught:
            await client.delete_workflow("wf")
    assert caught.value.attempts == 3
    assert isinstance(caught.value.last_error, ConnectError)
    with (
        ServiceIntegrationClientSync(closed, timeout=2, clock=clock) as sync,
        pytest.raises(MaxRetriesExceededError) as caught,
    ):
        sync.get_integration_health()
    assert isinstance(caught.value.last_error, ConnectError)


async def test_retry_policies_can_be_replaced(server: FaultyServer, clock: FakeClock) -> None:
    server.set(mode="fail", status=503)
    policies = {OperationType.READ: OperationRetryPolicy(retries=0, base_delay=0, max_delay=0)}
    async with ServiceIntegrationClient(
        f"{server.url}/api", clock=clock, retry_policies=policies
    ) as client:
        with pytest.raises(MaxRetriesExceededError) as caught:
            await client.get_services()
        assert caught.value.attempts == 1
        assert client.retry_policies[OperationType.CREATE] == OperationRetryPolicy(3, 0.5, 4.0)


async def test_one_idempotency_key_per_call_reused_across_retries(
    server: FaultyServer, clock: FakeClock
) -> None:
    recording = Recording()
    server.set(script=[{"mode": "fail"}, {"mode": "fail"}])
    async with ServiceIntegrationClient(
        f"{server.url}/api", clock=clock, transport=recording
    ) as client:
        await client.execute_service_action("svc", "extract", {"document_url": "x"})
        await client.execute_workflow("wf", {"x": 1}, wait=False)
        await client.get_services()
    keys = [request.headers.get("idempotency-key") for request in recording.requests]
    assert len(keys) == 5
    assert keys[0] is not None
    assert keys[0] == keys[1] == keys[2]  # the action call and its two retries
    assert keys[3] is not None
    assert keys[3] != keys[0]  # a new call, a new key
    assert keys[4] is None  # reads carry none
    assert recording.requests[3].url.path == "/api/workflows/wf/execute"


def test_sync_idempotency_key_reused_across_retries(server: FaultyServer, clock: FakeClock) -> None:
    recording = RecordingSync()
    server.set(script=[{"mode": "fail"}])
    with ServiceIntegrationClientSync(
        f"{server.url}/api", clock=clock, transport=recording
    ) as client:
        client.execute_workflow("wf", wait=False)
    first, second = (request.headers["idempotency-key"] for request in recording.requests)
    assert first == second


# ---- circuit breaker ----------------------------------------------------------------------


async def test_the_breaker_opens_and_calls_fail_fast(
    server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="fail", status=503)
    config = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=30.0)
    async with ServiceIntegrationClient(
        f"{server.url}/api", clock=clock, circuit_breaker_config=config
    ) as client:
        with pytest.raises(MaxRetriesExceededError):
            await client.get_services()  # 3 failed attempts: the breaker opens
        assert client.circuit_breaker.state is CircuitState.OPEN
        hits = server.behaviour.total_hits

        with pytest.raises(ServiceUnavailableError) as caught:
            await client.register_service(name="svc", endpoint="http://svc/api")
        assert isinstance(caught.value, ServiceUnavailable)
        assert caught.value.service_name == NAME
        with pytest.raises(ServiceUnavailableError) as caught:
            client.get_service("svc")["name"]  # the sync path shares the breaker
        assert caught.value.service_name == NAME
        assert server.behaviour.total_hits == hits  # nothing reached the server

        server.set(mode="ok")
        clock.advance(31.0)  # past the 30 s cool-down (exactly 30.0 may round to just under)
        assert (await client.get_services())["ok"] is True  # the trial call closes it
        assert client.circuit_breaker.state is CircuitState.CLOSED


async def test_a_retry_stops_when_the_breaker_opens(server: FaultyServer, clock: FakeClock) -> None:
    server.set(mode="fail", status=503)
    config = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=30.0)
    async with ServiceIntegrationClient(
        f"{server.url}/api", clock=clock, circuit_breaker_config=config
    ) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.create_workflow(name="wf", steps=[])
    assert not isinstance(caught.value, MaxRetriesExceededError)
    assert caught.value.service_name == NAME
    assert server.behaviour.total_hits == 2  # no sleep toward a circuit that will refuse
    assert len(clock.sleeps) == 1


def test_sync_breaker_fails_fast(server: FaultyServer, clock: FakeClock) -> None:
    server.set(mode="fail", status=503)
    config = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=30.0)
    with ServiceIntegrationClientSync(
        f"{server.url}/api", clock=clock, circuit_breaker_config=config
    ) as client:
        with pytest.raises(MaxRetriesExceededError):
            client.deregister_service("svc")
        with pytest.raises(ServiceUnavailable) as caught:
            client.get_integration_health()
    assert caught.value.service_name == NAME
    assert server.behaviour.total_hits == 3


async def test_an_unhealthy_report_is_returned_not_raised(
    server: FaultyServer, clock: FakeClock
) -> None:
    server.set(mode="fail", status=503)
    async with ServiceIntegrationClient(f"{server.url}/api", clock=clock) as client:
        report = await client.get_integration_health()
    assert report["status"] == 503  # the faulty server's JSON body, as it sent it
    assert server.behaviour.total_hits == 1


# ---- WorkflowExecution --------------------------------------------------------------------


def test_execution_falls_back_to_its_output() -> None:
    execution = WorkflowExecution(
        id="789", status="COMPLETED", output={"sentiment": "positive", "score": 0.8, "id": "x"}
    )
    assert execution["sentiment"] == "positive"
    assert execution.get("score") == 0.8
    assert execution["id"] == "789"  # the execution's own key wins
    assert "sentiment" not in execution
    assert execution.get("missing", 1) == 1
    with pytest.raises(KeyError, match="status COMPLETED"):
        execution["missing"]


def test_execution_key_error_says_why() -> None:
    failed = WorkflowExecution(id="1", status="FAILED", output=None, error={"message": "boom"})
    with pytest.raises(KeyError, match=r"status FAILED, error: .*boom"):
        failed["sentiment"]
    running = WorkflowExecution(id="2", status="RUNNING", output=None)
    with pytest.raises(KeyError, match="status RUNNING, not finished"):
        running["sentiment"]


# ---- workflows and executions (need the workflow routes) ----------------------------------


def _standin_app() -> Starlette:
    """The services seed 003's example wires together, as one small HTTP app."""

    async def extract(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"text": f"text of {body.get('document_url')}"})

    async def analyze(request: Request) -> JSONResponse:
        body = await request.json()
        assert body.get("text")
        return JSONResponse({"sentiment": "positive", "score": 0.8})

    async def slow(request: Request) -> JSONResponse:
        await asyncio.sleep(5.0)
        return JSONResponse({"text": "late"})

    return Starlette(
        routes=[
            Route("/extract", extract, methods=["POST"]),
            Route("/analyze", analyze, methods=["POST"]),
            Route("/slow", slow, methods=["POST"]),
        ]
    )


@pytest.fixture
def standin() -> Iterator[str]:
    with _uvicorn(_standin_app(), lifespan="off") as running:
        yield running.url


def _action(name: str, required: str, output: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} something",
        "input_schema": {
            "type": "object",
            "properties": {required: {"type": "string"}},
            "required": [required],
        },
        "output_schema": {"type": "object", "properties": output, "required": list(output)},
    }


SEED_STEPS = [
    {"id": "extract-text", "service": "text-extraction", "action": "extract", "next": "analyze"},
    {"id": "analyze", "service": "sentiment-analysis", "action": "analyze", "next": None},
]


async def _register_seed_services(client: ServiceIntegrationClient, endpoint: str) -> None:
    await client.register_service(
        name="text-extraction",
        description="Extract text from documents",
        endpoint=endpoint,
        actions=[_action("extract", "document_url", {"text": {"type": "string"}})],
    )
    await client.register_service(
        name="sentiment-analysis",
        description="Analyze sentiment of text",
        endpoint=endpoint,
        actions=[
            _action(
                "analyze",
                "text",
                {"sentiment": {"type": "string"}, "score": {"type": "number"}},
            )
        ],
    )


@needs_workflows
@needs_executions
async def test_the_seed_example_end_to_end(api: ServiceIntegrationClient, standin: str) -> None:
    await _register_seed_services(api, standin)
    workflow = await api.create_workflow(
        name="document-sentiment",
        description="Extract text from a document and analyze sentiment",
        steps=SEED_STEPS,
        metadata={"version": "1.0.0"},
    )
    result = await api.execute_workflow(
        workflow_id=workflow["id"],
        input_data={"document_url": "https://example.com/document.pdf"},
        context={"request_id": "req-123"},
        poll_interval=0.05,
    )
    assert isinstance(result, WorkflowExecution)
    assert result["status"] == "COMPLETED", result
    assert result["sentiment"] == "positive"
    assert result["score"] == 0.8
    assert result["context"] == {"request_id": "req-123"}
    assert [step["id"] for step in result["steps"]] == ["extract-text", "analyze"]

    status = api.get_workflow_execution_status(execution_id=result["id"])
    assert status["status"] == "COMPLETED"
    assert status["sentiment"] == "positive"
    awaited = await api.get_workflow_execution_status(result["id"])
    assert isinstance(awaited, WorkflowExecution)
    assert awaited["id"] == result["id"]

    executions = api.get_workflow_executions(workflow_id=workflow["id"])
    assert [item["id"] for item in executions["items"]] == [result["id"]]
    completed = await api.get_workflow_executions(workflow["id"], status="COMPLETED")
    assert completed["total"] == 1
    assert (await api.get_workflow_executions(workflow["id"], status="FAILED"))["total"] == 0
    page_2 = api.get_workflow_executions(workflow_id=workflow["id"], page=2, per_page=10)
    assert page_2["items"] == []


@needs_workflows
async def test_workflow_crud(api: ServiceIntegrationClient, standin: str) -> None:
    await _register_seed_services(api, standin)
    workflow = await api.create_workflow(
        name="document-processing", steps=SEED_STEPS, metadata={"author": "tests"}
    )
    assert workflow["name"] == "document-processing"
    assert workflow["metadata"] == {"author": "tests"}

    assert (await api.get_workflow(workflow_id=workflow["id"]))["id"] == workflow["id"]
    assert api.get_workflow(workflow["id"])["name"] == "document-processing"
    listed = api.get_workflows()
    assert [item["id"] for item in listed["items"]] == [workflow["id"]]

    updated = await api.update_workflow(
        workflow_id=workflow["id"],
        name="document-processing-v2",
        description="Improved document processing workflow",
        status="INACTIVE",
    )
    assert updated["name"] == "document-processing-v2"
    assert updated["status"] == "INACTIVE"
    assert updated["steps"][0]["id"] == "extract-text"  # not given, so unchanged
    assert (await api.get_workflows(status="INACTIVE"))["total"] == 1
    assert (await api.get_workflows(status="ACTIVE"))["total"] == 0
    assert (await api.get_workflows(page=2, per_page=10))["items"] == []

    removed = await api.delete_workflow(workflow_id=workflow["id"])
    assert removed == {"id": workflow["id"], "name": "document-processing-v2", "deleted": True}
    with pytest.raises(ResourceNotFoundError) as caught:
        await api.get_workflow(workflow["id"])
    assert (caught.value.resource_type, caught.value.resource_id) == ("workflow", workflow["id"])


@needs_workflows
async def test_workflow_errors(api: ServiceIntegrationClient, standin: str) -> None:
    await _register_seed_services(api, standin)
    with pytest.raises(ValidationError) as caught:
        await api.create_workflow(
            name="bad",
            steps=[{"id": "a", "service": "text-extraction", "action": "no-such-action"}],
        )
    assert [p["field"] for p in caught.value.validation_errors] == ["steps.0.action"]
    with pytest.raises(ValidationError) as caught:
        await api.create_workflow(name="no-steps")
    assert [p["field"] for p in caught.value.validation_errors] == ["steps"]

    first = await api.create_workflow(name="wf", steps=SEED_STEPS)
    assert await api.create_workflow(name="wf", steps=SEED_STEPS) == first  # the same again
    with pytest.raises(ConflictError):
        await api.create_workflow(name="wf", steps=SEED_STEPS, description="another")
    with pytest.raises(ResourceNotFoundError) as missing:
        await api.execute_workflow(workflow_id="123")
    assert (missing.value.resource_type, missing.value.resource_id) == ("workflow", "123")


@needs_workflows
@needs_executions
async def test_execute_without_waiting_then_poll(
    api: ServiceIntegrationClient, standin: str
) -> None:
    await _register_seed_services(api, standin)
    workflow = await api.create_workflow(name="wf", steps=SEED_STEPS)
    started = await api.execute_workflow(
        workflow["id"], {"document_url": "https://example.com/d.pdf"}, wait=False
    )
    assert started["status"] in {"PENDING", "RUNNING", "COMPLETED"}
    assert started["workflow_id"] == workflow["id"]
    for _ in range(200):
        execution = await api.get_workflow_execution_status(started["id"])
        if execution["status"] == "COMPLETED":
            break
        await asyncio.sleep(0.05)
    assert execution["status"] == "COMPLETED"
    assert execution["sentiment"] == "positive"


async def _slow_workflow(client: ServiceIntegrationClient, endpoint: str) -> dict[str, Any]:
    """A one-step workflow whose action answers after 5 s: an execution to catch running."""
    action = _action("slow", "document_url", {"text": {"type": "string"}})
    await client.register_service(name="slow", endpoint=endpoint, actions=[action])
    return await client.create_workflow(
        name="slow-wf", steps=[{"id": "wait", "service": "slow", "action": "slow"}]
    )


@needs_workflows
@needs_executions
async def test_cancel_and_resume(api: ServiceIntegrationClient, standin: str) -> None:
    workflow = await _slow_workflow(api, standin)
    started = await api.execute_workflow(workflow["id"], {"document_url": "x"}, wait=False)
    cancelled = await api.cancel_workflow_execution(execution_id=started["id"])
    assert isinstance(cancelled, WorkflowExecution)
    assert cancelled["id"] == started["id"]
    for _ in range(200):
        if (await api.get_workflow_execution_status(started["id"]))["status"] == "CANCELLED":
            break
        await asyncio.sleep(0.05)
    assert (await api.get_workflow_execution_status(started["id"]))["status"] == "CANCELLED"

    resumed = await api.resume_workflow_execution(execution_id=started["id"])
    assert resumed["id"] == started["id"]
    assert resumed["status"] in {"PENDING", "RUNNING"}
    await api.cancel_workflow_execution(started["id"])  # do not leave it running


@needs_workflows
@needs_executions
async def test_execute_workflow_gives_up_waiting_after_timeout(
    api: ServiceIntegrationClient, api_url: str, standin: str
) -> None:
    workflow = await _slow_workflow(api, standin)
    async with ServiceIntegrationClient(api_url, timeout=0.5) as client:
        execution = await client.execute_workflow(
            workflow["id"], {"document_url": "x"}, poll_interval=0.05
        )
        assert execution["status"] in {"PENDING", "RUNNING"}
        with pytest.raises(KeyError, match="not finished"):
            execution["text"]
    await api.cancel_workflow_execution(execution["id"])


@needs_workflows
@needs_executions
async def test_a_retried_execute_starts_one_execution(
    api_url: str, standin: str, clock: FakeClock
) -> None:
    class LoseFirstAnswer(httpx.AsyncHTTPTransport):
        """Deliver the first execute request, then drop its answer, as a broken link would."""

        lost = False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if request.url.path.endswith("/execute") and not self.lost:
                self.lost = True
                await response.aclose()
                raise httpx.ReadError("connection reset", request=request)
            return response

    async with ServiceIntegrationClient(
        api_url, clock=clock, transport=LoseFirstAnswer()
    ) as client:
        await _register_seed_services(client, standin)
        workflow = await client.create_workflow(name="wf", steps=SEED_STEPS)
        started = await client.execute_workflow(
            workflow["id"], {"document_url": "https://example.com/d.pdf"}, wait=False
        )
        assert len(clock.sleeps) == 1  # one retry, with the same Idempotency-Key
        executions = await client.get_workflow_executions(workflow["id"])
    assert executions["total"] == 1
    assert executions["items"][0]["id"] == started["id"]


@needs_actions
async def test_execute_service_action(api: ServiceIntegrationClient, standin: str) -> None:
    await _register_seed_services(api, standin)
    result = await api.execute_service_action(
        service_id="text-extraction",
        action="extract",
        input_data={"document_url": "https://example.com/document.pdf"},
        context={"project_id": "789", "request_id": "req-123"},
    )
    assert result["service"] == "text-extraction"
    assert result["action"] == "extract"
    assert result["output"] == {"text": "text of https://example.com/document.pdf"}

    with pytest.raises(ValidationError):
        await api.execute_service_action("text-extraction", "extract", input_data={})
    with pytest.raises(ResourceNotFoundError):
        await api.execute_service_action("456", "extract", input_data={"document_url": "x"})


@needs_actions
def test_sync_execute_service_action(api_sync: ServiceIntegrationClientSync, standin: str) -> None:
    api_sync.register_service(
        name="sentiment-analysis",
        endpoint=standin,
        actions=[_action("analyze", "text", {"sentiment": {"type": "string"}})],
    )
    result = api_sync.execute_service_action("sentiment-analysis", "analyze", {"text": "great"})
    assert result["output"]["sentiment"] == "positive"


@needs_workflows
@needs_executions
def test_sync_client_workflows(api_sync: ServiceIntegrationClientSync, standin: str) -> None:
    for name, action in (
        ("text-extraction", _action("extract", "document_url", {"text": {"type": "string"}})),
        ("sentiment-analysis", _action("analyze", "text", {"sentiment": {"type": "string"}})),
    ):
        api_sync.register_service(name=name, endpoint=standin, actions=[action])
    workflow = api_sync.create_workflow(name="wf", steps=SEED_STEPS)
    assert api_sync.get_workflow(workflow["id"])["name"] == "wf"
    assert api_sync.get_workflows()["total"] == 1
    result = api_sync.execute_workflow(
        workflow["id"], {"document_url": "https://example.com/d.pdf"}, poll_interval=0.05
    )
    assert result["status"] == "COMPLETED"
    assert result["sentiment"] == "positive"
    assert api_sync.get_workflow_execution_status(result["id"])["status"] == "COMPLETED"
    assert api_sync.get_workflow_executions(workflow["id"])["total"] == 1
    assert api_sync.update_workflow(workflow["id"], description="d")["description"] == "d"
    assert api_sync.delete_workflow(workflow["id"])["deleted"] is True


@needs_service_health
async def test_service_health(api: ServiceIntegrationClient, standin: str) -> None:
    await _register_seed_services(api, standin)
    health = await api.get_service_health(service_id="text-extraction")
    assert "status" in health
    assert api.get_service_health("text-extraction")["status"] == health["status"]
    with pytest.raises(ResourceNotFoundError) as caught:
        await api.get_service_health("456")
    assert (caught.value.resource_type, caught.value.resource_id) == ("service", "456")
