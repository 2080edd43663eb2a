"""Seed 003's reads as coroutines: ``asyncio.run``, tasks, ``gather`` and ``wait_for`` take them.

The async client's read methods return a ``DeferredRead``, which is awaited or used as
the mapping it fetches. These tests drive it through asyncio's own entry points against
the real integration service (uvicorn in a background thread, SQLite under ``tmp_path``),
and check that a read used only as a mapping, or not at all, leaves no "coroutine was
never awaited" warning.
"""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from servicegrid import ServiceIntegrationClient, ServiceIntegrationClientSync
from servicegrid.clients import DeferredRead
from servicegrid.errors import ResourceNotFoundError
from tests.integration import test_client as reference
from tests.integration.conftest import make_service

# the fixtures of the client's main tests: the service's base URL and a client on it
api_url = reference.api_url
api = reference.api

ONE_STEP = [{"id": "extract-text", "service": "text-extraction", "action": "extract"}]


def _runtime_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.fixture
def no_runtime_warnings() -> Iterator[None]:
    """Fail the test if any RuntimeWarning (an un-awaited coroutine's) is issued in it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()  # finalise whatever the test dropped, so its warnings are issued here
    assert _runtime_warnings(caught) == []


def test_the_client_names_import_from_the_package() -> None:
    from servicegrid.clients import integration

    assert ServiceIntegrationClient is integration.ServiceIntegrationClient
    assert ServiceIntegrationClientSync is integration.ServiceIntegrationClientSync


def test_asyncio_run_takes_a_read(api_url: str) -> None:
    client = ServiceIntegrationClient(api_url, timeout=10)
    read = client.get_integration_health()
    assert isinstance(read, DeferredRead)
    assert isinstance(read, collections.abc.Coroutine)
    assert asyncio.iscoroutine(read)

    health = asyncio.run(read)
    assert type(health) is dict
    assert health["status"] == "healthy"
    # every asyncio.run is a new loop: the client opens a connection pool on each
    assert asyncio.run(client.get_services())["total"] == 0
    with pytest.raises(ResourceNotFoundError) as caught:
        asyncio.run(client.get_service("missing"))
    assert (caught.value.resource_type, caught.value.resource_id) == ("service", "missing")
    asyncio.run(client.aclose())


def test_asyncio_run_after_mapping_use_sends_nothing_more(api_url: str) -> None:
    recording = reference.RecordingSync()
    client = ServiceIntegrationClient(api_url, timeout=10, sync_transport=recording)
    read = client.get_integration_health()
    assert read["status"] == "healthy"  # sent synchronously, once
    assert asyncio.run(read) is read.result()
    assert len(recording.requests) == 1
    asyncio.run(client.aclose())


@reference.needs_workflows
async def test_create_task_takes_a_read(api: ServiceIntegrationClient) -> None:
    await api.register_service(**make_service("text-extraction"))
    workflow = await api.create_workflow(name="wf", steps=ONE_STEP)

    workflows = await asyncio.create_task(api.get_workflows())
    assert type(workflows) is dict
    assert [item["id"] for item in workflows["items"]] == [workflow["id"]]

    read = api.get_workflow(workflow["id"])
    task = asyncio.create_task(read)
    assert await task == workflow
    assert read.done
    assert await read is task.result()  # awaiting it again returns the same answer


@reference.needs_workflows
async def test_gather_and_wait_for_take_reads(api: ServiceIntegrationClient) -> None:
    service = await api.register_service(**make_service("text-extraction"))
    workflow = await api.create_workflow(name="wf", steps=ONE_STEP)

    fetched, services = await asyncio.gather(
        api.get_workflow(workflow_id=workflow["id"]), api.get_services()
    )
    assert fetched == workflow
    assert services["items"] == [service]

    executions = await asyncio.wait_for(api.get_workflow_executions(workflow["id"]), 60)
    assert executions["total"] == 0

    results = await asyncio.gather(
        api.get_service("missing"), api.get_integration_health(), return_exceptions=True
    )
    assert isinstance(results[0], ResourceNotFoundError)
    assert isinstance(results[1], dict)
    assert results[1]["status"] == "healthy"


async def test_a_task_cancelled_before_it_runs_sends_nothing(
    api_url: str, no_runtime_warnings: None
) -> None:
    recording = reference.Recording()
    async with ServiceIntegrationClient(api_url, transport=recording) as client:
        task = asyncio.create_task(client.get_services())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await client.get_services())["total"] == 0  # the client is still usable
    assert len(recording.requests) == 1


async def test_a_read_used_only_as_a_mapping_leaves_no_warning(
    api: ServiceIntegrationClient, no_runtime_warnings: None
) -> None:
    await api.register_service(**make_service("text-extraction"))
    found = api.get_service("text-extraction")
    assert found["name"] == "text-extraction"
    assert dict(found) == await api.get_service("text-extraction")
    health = api.get_integration_health()
    assert health.get("status") == "healthy"
    api.get_services()  # never used at all
    del found, health


def test_a_closed_read_stays_usable_as_a_mapping(api_url: str, no_runtime_warnings: None) -> None:
    client = ServiceIntegrationClientSync(api_url)
    client.register_service(**make_service("svc"))
    client.close()

    async_client = ServiceIntegrationClient(api_url)
    read = async_client.get_service("svc")
    read.close()  # as a task or a coroutine wrapper would close it
    with pytest.raises(RuntimeError):
        read.send(None)
    assert read["name"] == "svc"
    asyncio.run(async_client.aclose())


def test_the_sync_client_answers_plain_dicts(api_url: str) -> None:
    with ServiceIntegrationClientSync(api_url) as client:
        health: Any = client.get_integration_health()
    assert type(health) is dict
    assert health["status"] == "healthy"
