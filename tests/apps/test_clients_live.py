"""Seed 002's clients against the real services: the REST and the gRPC client answer alike.

Users and questions are served in-process as ``servicegrid serve`` runs them: the REST app
on a real uvicorn server and the servicer on a real grpc.aio server, over ONE store each.
The clients find both faces through discovery (no address given). The same CRUD sequence
runs through the REST client, then (its rows deleted again) through the gRPC client, and
the answers must be equal but for timestamps, generated ids and change-feed positions.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from servicegrid import (
    APIGatewayClient,
    APIGatewayGRPCClient,
    QuestionServiceClient,
    QuestionServiceGRPCClient,
    UserServiceClient,
    UserServiceGRPCClient,
)
from servicegrid.apps import questions, users
from servicegrid.apps.api_gateway import servicer as gateway_servicer
from servicegrid.apps.api_gateway.deps import GatewayDeps
from servicegrid.apps.api_gateway.rest import create_app as create_gateway_app
from servicegrid.discovery import Discovery
from servicegrid.discovery.static import StaticBackend
from servicegrid.errors import ServiceError
from servicegrid.proto import (
    question_service_pb2,
    question_service_pb2_grpc,
    user_service_pb2,
    user_service_pb2_grpc,
)
from servicegrid.runtime import ServiceRegistration, create_server
from servicegrid.settings import Settings, load_settings
from tests.support.threaded_server import free_port

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@asynccontextmanager
async def serving_rest(app: FastAPI) -> AsyncIterator[str]:
    """``app`` on a real uvicorn server on this event loop (the store's loop): its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def serving_grpc(*registrations: ServiceRegistration) -> AsyncIterator[str]:
    """The servicers on a real grpc.aio server on 127.0.0.1: its target."""
    running = await create_server(
        "127.0.0.1:0", services=registrations, registry=CollectorRegistry()
    )
    await running.server.start()
    await running.health.set_all(True)  # as serve_rest_and_grpc reports once started
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        await running.server.stop(None)


@dataclass
class Served:
    discovery: Discovery
    settings: Settings


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    settings = load_settings(
        user_service_database_url=f"sqlite+aiosqlite:///{tmp_path}/users.db",
        question_service_database_url=f"sqlite+aiosqlite:///{tmp_path}/questions.db",
        sample_data=True,
    )
    user_store = users.UserStore.from_settings(settings)
    question_store = questions.QuestionStore.from_settings(settings)
    async with user_store, question_store:
        user_grpc = ServiceRegistration.from_descriptor(
            user_service_pb2.DESCRIPTOR.services_by_name["UserService"],
            user_service_pb2_grpc.add_UserServiceServicer_to_server,
            users.UserServicer(user_store),
        )
        question_grpc = ServiceRegistration.from_descriptor(
            question_service_pb2.DESCRIPTOR.services_by_name["QuestionService"],
            question_service_pb2_grpc.add_QuestionServiceServicer_to_server,
            questions.QuestionServicer(question_store),
        )
        async with (
            serving_rest(users.create_app(settings, store=user_store)) as users_url,
            serving_rest(questions.create_app(settings, store=question_store)) as questions_url,
            serving_grpc(user_grpc) as users_target,
            serving_grpc(question_grpc) as questions_target,
        ):
            backend = StaticBackend(
                {
                    "user-service": [users_url],
                    "user-service-grpc": [users_target],
                    "question-service": [questions_url],
                    "question-service-grpc": [questions_target],
                }
            )
            discovery = Discovery([backend])
            yield Served(discovery, settings)
            await discovery.aclose()


def normalized(value: Any, generated: dict[str, str]) -> Any:
    """``value`` with timestamps and the ids in ``generated`` replaced by placeholders."""
    if isinstance(value, dict):
        return {key: normalized(item, generated) for key, item in value.items()}
    if isinstance(value, list):
        return [normalized(item, generated) for item in value]
    if isinstance(value, str):
        if TIME.match(value):
            return "<time>"
        return generated.get(value, value)
    return value


async def outcome(step: Awaitable[Any]) -> Any:
    """The answer, or the error's class name: both protocols must fail alike."""
    try:
        return await step
    except ServiceError as error:
        return type(error).__name__


async def user_story(client: Any) -> list[Any]:
    created = await client.create_user(
        "dana", "dana@example.com", "Dana", ["go", "go", " rust "], user_id="live-dana"
    )
    picked = await client.create_user("erin", "erin@example.com")
    generated = {picked["id"]: "<generated>"}
    answers = [
        created,
        picked,
        await outcome(client.create_user("dana2", "d2@example.com", user_id="live-dana")),
        await outcome(client.create_user("dana", "other@example.com")),
        await outcome(client.create_user("frank", "no-at-sign")),
        await client.get_user("live-dana"),
        await client.update_user("live-dana", email="dana@example.org", interests=[]),
        await client.update_user("live-dana", full_name="Dana D."),
        await outcome(client.update_user("live-dana", username="bad name!")),
        await client.list_users(page=1, per_page=2),
        await client.list_users(page=2, per_page=100),
        await client.delete_user("live-dana"),
        await client.delete_user(picked["id"]),
        await outcome(client.get_user("live-dana")),
        await outcome(client.delete_user("live-dana")),
        (await client.health_check())["status"],
    ]
    return [normalized(answer, generated) for answer in answers]


async def question_story(client: Any) -> list[Any]:
    start = (await client.list_changes(after=0, limit=1000))["next_after"]
    created = await client.create_question(
        "user-123",
        "How do clients retry safely?",
        "Only idempotent calls are retried.",
        ["Retry", "retry", "grpc"],
        question_id="live-q1",
    )
    picked = await client.create_question("user-456", "Where do changes go?", tags=["feed"])
    generated = {picked["id"]: "<generated>"}
    answers = [
        created,
        picked,
        await outcome(client.create_question("user-123", "Dup", question_id="live-q1")),
        await outcome(client.create_question("user-123", "Reserved", question_id="search")),
        await outcome(client.create_question("user-123", "   ")),
        await client.get_question("live-q1"),
        await client.update_question("live-q1", title="How do clients retry, safely?"),
        await client.update_question("live-q1", tags=[]),
        await client.list_questions(user_id="user-123", per_page=2),
        await client.list_questions(tag="FEED"),
        await client.get_user_questions("user-456"),
        await client.search_questions("retry clients"),
        await client.search_questions("vector database", user_id="user-123", limit=1),
        await client.delete_question("live-q1"),
        await client.delete_question(picked["id"]),
        await outcome(client.get_question("live-q1")),
        (await client.health_check())["status"],
    ]
    feed = await client.list_changes(after=start)
    for change in feed["changes"]:
        change["seq"] -= start
    feed["next_after"] -= start
    answers.append(feed)
    return [normalized(answer, generated) for answer in answers]


Story = Callable[[Any], Awaitable[list[Any]]]


async def told_by(client: Any, story: Story, *, connect: bool) -> list[Any]:
    if connect:
        await client.connect()
    try:
        return await story(client)
    finally:
        await client.aclose()


async def test_users_answer_alike_over_rest_and_grpc(served: Served) -> None:
    # seed 002, as written, but for the discovery this test brings
    rest = await told_by(
        UserServiceClient(discovery=served.discovery, registry=None), user_story, connect=False
    )
    grpc_ = await told_by(
        UserServiceGRPCClient(discovery=served.discovery, registry=None), user_story, connect=True
    )
    assert rest == grpc_
    created = rest[0]
    assert created == {
        "id": "live-dana",
        "username": "dana",
        "email": "dana@example.com",
        "full_name": "Dana",
        "interests": ["go", "rust"],
        "created_at": "<time>",
        "updated_at": "<time>",
    }
    assert rest[2:5] == ["ConflictError", "ConflictError", "ValidationError"]
    assert rest[9]["total"] == 5  # three sample users and the two made here
    assert rest[11] == {"id": "live-dana", "deleted": True}
    assert rest[13:] == ["ResourceNotFoundError", "ResourceNotFoundError", "healthy"]


async def test_questions_answer_alike_over_rest_and_grpc(served: Served) -> None:
    rest = await told_by(
        QuestionServiceClient(discovery=served.discovery, registry=None),
        question_story,
        connect=False,
    )
    grpc_ = await told_by(
        QuestionServiceGRPCClient(discovery=served.discovery, registry=None),
        question_story,
        connect=True,
    )
    assert rest == grpc_
    assert rest[0]["tags"] == ["retry", "grpc"]
    assert rest[2:5] == ["ConflictError", "ValidationError", "ValidationError"]
    search = rest[11]
    assert search["items"][0]["question"]["id"] == "live-q1"
    assert search["total"] >= 1
    feed = rest[-1]
    assert [(c["seq"], c["kind"]) for c in feed["changes"]] == [
        (1, "created"),
        (2, "created"),
        (3, "updated"),
        (4, "updated"),
        (5, "deleted"),
        (6, "deleted"),
    ]
    assert feed["next_after"] == 6


async def test_the_gateway_passes_upstream_answers_through_alike(served: Served) -> None:
    deps = GatewayDeps.from_settings(served.settings, discovery=served.discovery)
    app = create_gateway_app(served.settings, deps=deps)
    async with (
        serving_rest(app) as gateway_url,
        serving_grpc(gateway_servicer.registration(deps)) as gateway_target,
    ):
        answers = []
        for client in (
            APIGatewayClient(gateway_url, registry=None),
            APIGatewayGRPCClient(gateway_target, registry=None),
        ):
            async with client:
                found = await client.proxy_request("user-service", "GET", "/users/user-123")
                missing = await client.proxy_request("user-service", "GET", "/users/nobody")
                unknown = await outcome(client.proxy_request("no-such-service"))
                allowed = await client.validate_request("no-such-key", "users", "read")
                answers.append((found, missing, unknown, allowed))
    rest, grpc_ = answers
    for answer in (rest, grpc_):
        found, missing, unknown, allowed = answer
        assert found["status_code"] == 200
        assert found["body"]["username"] == "alice"
        assert missing["status_code"] == 404
        assert "nobody" in missing["body"]["detail"]
        assert isinstance(unknown, str)  # the gateway's own failure: a typed error
        assert allowed["allowed"] is False
    assert (rest[0]["body"], rest[1]["body"]) == (grpc_[0]["body"], grpc_[1]["body"])
    assert rest[2] == grpc_[2]
    assert rest[3] == grpc_[3]
