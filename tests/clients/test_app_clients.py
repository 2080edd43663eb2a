"""Seed 002's clients (users, questions, API gateway; REST and gRPC) on MockTransport."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from servicegrid import (
    APIGatewayClient,
    APIGatewayGRPCClient,
    QuestionServiceClient,
    QuestionServiceGRPCClient,
    UserServiceClient,
    UserServiceGRPCClient,
)
from servicegrid.clients.app_rest import tls_context
from servicegrid.discovery import Discovery, EnvBackend
from servicegrid.discovery.balancer import BalancedTransport
from servicegrid.discovery.static import StaticBackend
from servicegrid.errors import (
    ClientStateError,
    ConflictError,
    ConnectError,
    ResourceNotFoundError,
    ServiceUnavailable,
    ServiceUnavailableError,
    ValidationError,
)
from servicegrid.proto import api_gateway_pb2, question_service_pb2, user_service_pb2
from servicegrid.resilience import CircuitBreakerConfig, RetrySpec
from servicegrid.settings import load_settings
from servicegrid.testing import FakeClock
from servicegrid.transports import Call, MockTransport, Reply
from servicegrid.transports.grpc import channel_credentials
from servicegrid.transports.grpc_transport import GrpcTransport
from servicegrid.transports.http1 import Http1Transport

USER: dict[str, Any] = {
    "id": "user-123",
    "username": "alice",
    "email": "alice@example.com",
    "full_name": "Alice Example",
    "interests": ["python"],
    "created_at": "2026-12-03T18:00:00Z",
    "updated_at": "2026-12-03T18:00:00Z",
}
QUESTION: dict[str, Any] = {
    "id": "q-001",
    "user_id": "user-123",
    "title": "What is machine learning?",
    "body": "",
    "tags": ["basics"],
    "created_at": "2026-12-03T18:00:00Z",
    "updated_at": "2026-12-03T18:00:00Z",
}
JSON = [("content-type", "application/json")]


def answer(status: int, body: object, *headers: tuple[str, str]) -> Reply:
    return Reply(status, [*JSON, *headers], json.dumps(body).encode())


def body_of(call: Call) -> Any:
    return json.loads(call.body)


def query_of(call: Call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.url).query)


def rest(cls: type[Any], handler: Callable[[Call], Reply], **kwargs: Any) -> tuple[Any, Any]:
    mock = MockTransport(handler)
    kwargs.setdefault("clock", FakeClock())
    client = cls("http://svc:8001", transport=mock, registry=None, **kwargs)
    return client, mock


def grpc_client(cls: type[Any], handler: Callable[[Call], Reply], **kwargs: Any) -> tuple[Any, Any]:
    mock = MockTransport(handler)
    kwargs.setdefault("clock", FakeClock())
    client = cls("svc:50061", transport=mock, registry=None, **kwargs)
    return client, mock


# ---- REST: paths, bodies, query parameters -------------------------------------------


async def test_user_rest_client_sends_each_operation_as_the_api_says() -> None:
    def handler(call: Call) -> Reply:
        if call.method == "DELETE":
            return answer(200, {"id": "user-123", "deleted": True})
        if call.method == "GET" and urlsplit(call.url).path == "/users":
            return answer(200, {"items": [USER], "total": 1, "page": 2, "per_page": 5})
        return answer(201 if call.method == "POST" else 200, USER)

    client, mock = rest(UserServiceClient, handler)
    async with client:
        assert await client.create_user("alice", "alice@example.com", interests=["python"]) == USER
        await client.create_user("bob", "bob@example.com", "Bob", user_id="user-456")
        assert await client.get_user("user-123") == USER
        await client.update_user("user-123", email="a@example.com", interests=[])
        assert await client.delete_user("user-123") == {"id": "user-123", "deleted": True}
        page = await client.list_users(page=2, per_page=5)
        await client.get_user("a/b")
    assert page["total"] == 1
    seen = [(c.method, urlsplit(c.url).path) for c in mock.calls]
    assert seen == [
        ("POST", "/users"),
        ("POST", "/users"),
        ("GET", "/users/user-123"),
        ("PATCH", "/users/user-123"),
        ("DELETE", "/users/user-123"),
        ("GET", "/users"),
        ("GET", "/users/a%2Fb"),
    ]
    create, named, _, patch, *_ = mock.calls
    assert body_of(create) == {
        "username": "alice",
        "email": "alice@example.com",
        "full_name": "",
        "interests": ["python"],
    }
    assert body_of(named)["id"] == "user-456"
    assert body_of(patch) == {"email": "a@example.com", "interests": []}  # None: unchanged
    assert ("content-type", "application/json") in patch.headers
    assert query_of(mock.calls[5]) == {"page": ["2"], "per_page": ["5"]}
    assert mock.calls[2].timeout == 30.0  # the catalogue's timeout, per attempt


async def test_question_rest_client_filters_search_and_feed() -> None:
    def handler(call: Call) -> Reply:
        path = urlsplit(call.url).path
        if path == "/questions/search":
            return answer(200, {"query": "ml", "items": [{"question": QUESTION, "score": 1.5}]})
        if path == "/questions/changes":
            return answer(200, {"changes": [], "next_after": 7, "has_more": False})
        return answer(200, {"items": [QUESTION], "total": 1, "page": 1, "per_page": 20})

    client, mock = rest(QuestionServiceClient, handler)
    await client.list_questions(tag="basics")
    await client.get_user_questions("user-123", per_page=3)
    found = await client.search_questions("ml", user_id="user-123", limit=5)
    feed = await client.list_changes(after=3, limit=10)
    await client.aclose()
    assert found["items"][0]["score"] == 1.5
    assert feed["next_after"] == 7
    queries = [(urlsplit(c.url).path, query_of(c)) for c in mock.calls]
    assert queries == [
        ("/questions", {"tag": ["basics"], "page": ["1"], "per_page": ["20"]}),
        ("/questions", {"user_id": ["user-123"], "page": ["1"], "per_page": ["3"]}),
        ("/questions/search", {"q": ["ml"], "user_id": ["user-123"], "limit": ["5"]}),
        ("/questions/changes", {"after": ["3"], "limit": ["10"]}),
    ]


async def test_question_rest_client_updates_only_what_is_given() -> None:
    client, mock = rest(QuestionServiceClient, lambda call: answer(200, QUESTION))
    await client.create_question("user-123", "Title?", tags=["a"], question_id="q-9")
    await client.update_question("q-001", body="", tags=None)
    await client.aclose()
    assert body_of(mock.calls[0]) == {
        "user_id": "user-123",
        "title": "Title?",
        "body": "",
        "tags": ["a"],
        "id": "q-9",
    }
    assert body_of(mock.calls[1]) == {"body": ""}


# ---- REST: typed errors and retries --------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (404, {"detail": "user user-9 not found", "error": "ResourceNotFoundError"},
         ResourceNotFoundError, "user user-9 not found"),
        (409, {"detail": "username: taken"}, ConflictError, "username: taken"),
        (422, {"detail": "email: must contain @", "validation_errors": [
            {"field": "email", "message": "must contain @", "type": "value_error"}]},
         ValidationError, "email: must contain @"),
        (422, {"detail": [{"loc": ["body", "body"], "msg": "too long", "type": "string_too_long"}]},
         ValidationError, "body: too long"),
        (404, "not json", ResourceNotFoundError, "GET"),
    ],
)  # fmt: skip
async def test_error_answers_raise_typed_errors_with_the_detail(
    status: int, body: object, error: type[Exception], message: str
) -> None:
    client, _ = rest(UserServiceClient, lambda call: answer(status, body))
    with pytest.raises(error) as caught:
        await client.get_user("user-9")
    assert str(caught.value).startswith(f"[users] {message}")
    if isinstance(caught.value, ValidationError):
        assert caught.value.validation_errors[0]["field"] in ("email", "body")


async def test_a_503_is_retried_for_get_but_not_for_post() -> None:
    clock = FakeClock()
    client, mock = rest(
        UserServiceClient, lambda call: answer(503, {"detail": "busy"}), clock=clock
    )
    with pytest.raises(ServiceUnavailableError, match="busy"):
        await client.get_user("user-123")
    assert len(mock.calls) == 3
    assert len(clock.sleeps) == 2
    with pytest.raises(ServiceUnavailableError):
        await client.create_user("alice", "alice@example.com")
    assert len(mock.calls) == 4  # sent once: it may have been done


async def test_a_post_is_retried_when_it_never_left() -> None:
    answers: list[Reply | Exception] = [ConnectError("refused"), answer(201, USER)]

    def handler(call: Call) -> Reply:
        step = answers.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    client, mock = rest(UserServiceClient, handler)
    assert await client.create_user("alice", "alice@example.com") == USER
    assert len(mock.calls) == 2


async def test_both_retry_policies_share_one_breaker() -> None:
    client, mock = rest(
        UserServiceClient,
        lambda call: answer(503, {"detail": "down"}),
        retry=RetrySpec(attempts=1),
        breaker=CircuitBreakerConfig(failure_threshold=2, recovery_timeout=30.0),
    )
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError):
            await client.get_user("user-123")
    with pytest.raises(ServiceUnavailable):  # open: the POST is refused without being sent
        await client.create_user("alice", "alice@example.com")
    assert len(mock.calls) == 2
    assert client.get_status()["state"] == "open"


async def test_bad_ids_and_bodies_fail_before_sending() -> None:
    client, mock = rest(UserServiceClient, lambda call: answer(200, USER))
    with pytest.raises(ValidationError, match="user_id"):
        await client.get_user("")
    with pytest.raises(ValidationError, match="body"):
        await client._send("POST", "/users", body={"x": object()})
    assert mock.calls == []


# ---- lifecycle -----------------------------------------------------------------------


async def test_constructing_opens_nothing_and_a_closed_client_refuses() -> None:
    discovery = Discovery([StaticBackend({"user-service": ["http://10.0.0.7:8001"]})])
    client = UserServiceClient(discovery=discovery, registry=None)
    assert isinstance(client.http, Http1Transport)
    assert repr(client.http) == "Http1Transport(pools=0)"
    assert discovery.lookups == 0
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(ClientStateError, match="closed"):
        await client.get_user("user-123")
    grpc_side = UserServiceGRPCClient(discovery=discovery, registry=None)
    assert isinstance(grpc_side.grpc, BalancedTransport)
    await grpc_side.connect()  # nothing to dial yet: instances are asked for on the first call
    assert discovery.lookups == 0
    await grpc_side.aclose()
    with pytest.raises(ClientStateError):
        await grpc_side.get_user("user-123")


async def test_the_grpc_client_opens_its_channel_on_connect() -> None:
    client = UserServiceGRPCClient("127.0.0.1:1", registry=None)
    assert isinstance(client.grpc, GrpcTransport)
    assert client.state.value == "unopened"
    await client.connect()
    assert client.state.value == "opened"
    await client.aclose()


# ---- discovery -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discovery", "url"),
    [
        (Discovery([StaticBackend({"user-service": ["http://10.0.0.7:8001"]})]),
         "http://10.0.0.7:8001/users/user-123"),
        (Discovery([EnvBackend(load_settings(http_services={"users": "http://users.env:9001"}))]),
         "http://users.env:9001/users/user-123"),
        (Discovery([EnvBackend(load_settings())]), "http://localhost:8001/users/user-123"),
    ],
)  # fmt: skip
async def test_without_an_address_the_rest_client_asks_discovery(
    discovery: Discovery, url: str
) -> None:
    mock = MockTransport(lambda call: answer(200, USER))
    client = UserServiceClient(discovery=discovery, transport=mock, registry=None)
    assert client.base_url == "discovery:///user-service"
    assert await client.get_user("user-123") == USER
    health = await client.health_check()
    await client.aclose()
    assert [c.url for c in mock.calls] == [url, url.replace("/users/user-123", "/health")]
    assert health["status"] == "healthy"


async def test_without_a_target_the_grpc_client_asks_discovery_for_the_grpc_face() -> None:
    settings = load_settings(grpc_targets={"USER_SERVICE": "users.env:50099"})
    discovery = Discovery([EnvBackend(settings)])
    client = UserServiceGRPCClient(discovery=discovery, registry=None)
    assert client.service_url == "discovery:///user-service"
    assert isinstance(client.grpc, BalancedTransport)
    assert client.grpc.protocol == "grpc"
    found = await client.grpc.discovery.resolve(client.grpc.service, "grpc")
    assert found.locators == ["users.env:50099"]
    assert (await Discovery([EnvBackend(load_settings())]).resolve("users", "grpc")).locators == [
        "localhost:50061"
    ]
    static = Discovery([StaticBackend({"question-service-grpc": ["10.0.0.8:50062"]})])
    questions = QuestionServiceGRPCClient(discovery=static, registry=None)
    assert isinstance(questions.grpc, BalancedTransport)
    assert (await questions.grpc.discovery.resolve("question-service", "grpc")).locators == [
        "10.0.0.8:50062"
    ]
    await client.aclose()
    await questions.aclose()


async def test_rest_health_check_never_raises() -> None:
    client, _ = rest(UserServiceClient, lambda call: answer(503, {"status": "unhealthy"}))
    report = await client.health_check()
    assert (report["status"], report["http_status"]) == ("unhealthy", 503)

    def refused(call: Call) -> Reply:
        raise ConnectError("refused")

    client, _ = rest(UserServiceClient, refused)
    report = await client.health_check()
    assert (report["status"], report["error_type"]) == ("unhealthy", "ConnectError")
    assert report["circuit_breaker"] == "closed"
    assert report["response_time_ms"] >= 0


# ---- gRPC ----------------------------------------------------------------------------


def user_message(**changes: Any) -> user_service_pb2.User:
    return user_service_pb2.User(**{**USER, **changes})


async def test_user_grpc_client_answers_with_the_rest_dicts() -> None:
    def handler(call: Call) -> Reply:
        method = call.method.rsplit("/", 1)[1]
        if method == "DeleteUser":
            return Reply(body=user_service_pb2.DeleteUserResponse(id="user-123", deleted=True))
        if method == "ListUsers":
            items = [user_message(), user_message(id="user-2", interests=[])]
            return Reply(body=user_service_pb2.ListUsersResponse(items=items, total=2, page=1))
        return Reply(body=user_message())

    client, mock = grpc_client(UserServiceGRPCClient, handler)
    assert await client.create_user("alice", "alice@example.com", interests=["python"]) == USER
    assert await client.get_user("user-123") == USER
    await client.update_user("user-123", email="a@example.com", interests=[])
    await client.update_user("user-123", full_name="A")
    assert await client.delete_user("user-123") == {"id": "user-123", "deleted": True}
    page = await client.list_users(per_page=5)
    await client.aclose()
    assert page == {
        "items": [USER, {**USER, "id": "user-2", "interests": []}],
        "total": 2,
        "page": 1,
        "per_page": 0,
    }
    assert [c.method for c in mock.calls] == [
        f"/servicegrid.v1.UserService/{m}"
        for m in ("CreateUser", "GetUser", "UpdateUser", "UpdateUser", "DeleteUser", "ListUsers")
    ]
    create, get, patch, rename, _, listing = (c.body for c in mock.calls)
    assert (create.id, list(create.interests)) == ("", ["python"])
    assert get.user_id == "user-123"
    assert patch.HasField("email")
    assert not patch.HasField("username")
    assert patch.HasField("interests")
    assert list(patch.interests.values) == []
    assert not rename.HasField("interests")
    assert rename.full_name == "A"
    assert (listing.page, listing.per_page) == (1, 5)


async def test_question_grpc_client_search_and_feed_as_dicts() -> None:
    question = question_service_pb2.Question(**QUESTION)

    def handler(call: Call) -> Reply:
        method = call.method.rsplit("/", 1)[1]
        if method == "SearchQuestions":
            hit = question_service_pb2.QuestionHit(question=question, score=2.0)
            return Reply(
                body=question_service_pb2.SearchQuestionsResponse(
                    query=call.body.q, items=[hit], total=1
                )
            )
        if method == "ListQuestionChanges":
            change = question_service_pb2.QuestionChange(
                seq=4, kind="created", question=question, at="2026-12-03T18:00:00Z"
            )
            return Reply(
                body=question_service_pb2.ListQuestionChangesResponse(
                    changes=[change], next_after=4, has_more=True
                )
            )
        if method == "ListQuestions":
            return Reply(
                body=question_service_pb2.ListQuestionsResponse(
                    items=[question], total=1, page=1, per_page=20
                )
            )
        return Reply(body=question)  # fmt: skip

    client, mock = grpc_client(QuestionServiceGRPCClient, handler)
    found = await client.search_questions("ml", limit=5)
    feed = await client.list_changes(after=3)
    mine = await client.get_user_questions("user-123")
    await client.update_question("q-001", tags=["x"])
    await client.create_question("user-123", "T?", question_id="q-7")
    await client.aclose()
    assert found == {"query": "ml", "items": [{"question": QUESTION, "score": 2.0}], "total": 1}
    assert feed == {
        "changes": [
            {"seq": 4, "kind": "created", "question": QUESTION, "at": "2026-12-03T18:00:00Z"}
        ],
        "next_after": 4,
        "has_more": True,
    }
    assert isinstance(feed["next_after"], int)
    assert mine["items"] == [QUESTION]
    search, changes, listing, update, create = (c.body for c in mock.calls)
    assert (search.q, search.user_id, search.limit) == ("ml", "", 5)
    assert changes.after == 3
    assert (listing.user_id, listing.tag) == ("user-123", "")
    assert list(update.tags.values) == ["x"]
    assert not update.HasField("title")
    assert create.id == "q-7"


async def test_grpc_errors_are_typed_and_creates_are_sent_once() -> None:
    def handler(call: Call) -> Reply:
        if call.method.endswith("/GetUser"):
            raise ResourceNotFoundError("user user-9 not found")
        raise ServiceUnavailableError("down")

    client, mock = grpc_client(UserServiceGRPCClient, handler)
    with pytest.raises(ResourceNotFoundError) as caught:
        await client.get_user("user-9")
    rpc_error = cast(object, caught.value)
    assert isinstance(rpc_error, grpc.RpcError)
    assert rpc_error.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(ServiceUnavailableError):
        await client.create_user("alice", "alice@example.com")
    assert len(mock.calls) == 2  # not retried
    with pytest.raises(ServiceUnavailableError):
        await client.list_users()
    assert len(mock.calls) == 5  # retried: 3 attempts
    with pytest.raises(ValidationError):
        await client.get_user("")
    await client.aclose()


async def test_grpc_health_check() -> None:
    def handler(call: Call) -> Reply:
        assert call.method == "/grpc.health.v1.Health/Check"
        return Reply(body=health_pb2.HealthCheckResponse(status=1))

    client, _ = grpc_client(UserServiceGRPCClient, handler)
    report = await client.health_check()
    await client.aclose()
    assert report["status"] == "healthy"
    assert report["service"] == "users-grpc"


# ---- the API gateway -----------------------------------------------------------------


async def test_gateway_rest_passes_the_upstream_answer_through() -> None:
    def handler(call: Call) -> Reply:
        if urlsplit(call.url).path == "/proxy":
            sent = body_of(call)
            if sent["service"] == "nowhere":  # the gateway's own answer: no upstream header
                return answer(404, {"detail": "no service called 'nowhere'"})
            if sent["path"] == "/text":
                return Reply(
                    200, [("content-type", "text/plain"), ("x-upstream-service", "u")], b"hello"
                )
            return answer(
                404,
                {"detail": "user user-9 not found"},
                ("x-upstream-service", "user-service"),
                ("x-extra", "1"),
            )
        if urlsplit(call.url).path == "/validate":
            return answer(200, {"allowed": True, "principal": "ci", "reason": "ok"})
        if urlsplit(call.url).path == "/rate-limit/check":
            return answer(
                200,
                {
                    "allowed": True,
                    "remaining": 19,
                    "reset_after_seconds": 0.1,
                    "retry_after_seconds": 0.0,
                },
            )
        return answer(200, {"service": "user-service", "status": "healthy", "instances": [],
                            "backend": "env"})  # fmt: skip

    client, mock = rest(APIGatewayClient, handler)
    proxied = await client.proxy_request(
        "user-service", "GET", "/users/user-9", headers={"X-Trace": "1"}
    )
    assert proxied["status_code"] == 404
    assert proxied["body"] == {"detail": "user user-9 not found"}
    assert proxied["headers"]["x-extra"] == "1"
    assert "x-upstream-service" not in proxied["headers"]
    text = await client.proxy_request("user-service", path="/text")
    assert text["body"] == "hello"
    with pytest.raises(ResourceNotFoundError, match="nowhere"):
        await client.proxy_request("nowhere")
    assert (await client.validate_request("k", "questions", "read"))["principal"] == "ci"
    assert (await client.check_rate_limit("c1"))["remaining"] == 19
    assert (await client.get_service_health("user-service"))["backend"] == "env"
    await client.aclose()
    assert body_of(mock.calls[0]) == {
        "service": "user-service",
        "method": "GET",
        "path": "/users/user-9",
        "headers": {"X-Trace": "1"},
        "body": None,
    }
    assert body_of(mock.calls[4]) == {"client_id": "c1", "resource": "default"}
    assert urlsplit(mock.calls[5].url).path == "/health/user-service"


async def test_gateway_rest_never_repeats_a_proxied_request() -> None:
    client, mock = rest(
        APIGatewayClient,
        lambda call: answer(503, {"detail": "down"}, ("x-upstream-service", "user-service")),
    )
    proxied = await client.proxy_request("user-service", "POST", "/users", body={"a": 1})
    assert proxied["status_code"] == 503
    assert len(mock.calls) == 1
    assert client.get_status()["failure_count"] == 0  # the upstream failed, not the gateway
    await client.aclose()


async def test_gateway_grpc_client() -> None:
    def handler(call: Call) -> Reply:
        method = call.method.rsplit("/", 1)[1]
        if method == "Proxy":
            return Reply(
                body=api_gateway_pb2.ProxyResponse(
                    status_code=201,
                    headers={"Content-Type": "application/json"},
                    body=json.dumps(MessageToDict(call.body.body)["a"]).encode(),
                )
            )
        if method == "Validate":
            return Reply(body=api_gateway_pb2.ValidateResponse(allowed=False, reason="unknown key"))
        if method == "CheckRateLimit":
            return Reply(body=api_gateway_pb2.RateLimitCheckResponse(allowed=True, remaining=3))
        instance = api_gateway_pb2.InstanceHealth(address="h:1", status="healthy")
        health = api_gateway_pb2.ServiceHealthResponse(
            service="user-service", status="healthy", instances=[instance], backend="env"
        )
        return Reply(body=health)  # fmt: skip

    client, _ = grpc_client(APIGatewayGRPCClient, handler)
    proxied = await client.proxy_request("user-service", "POST", "/users", body={"a": [1, "x"]})
    assert proxied == {
        "status_code": 201,
        "headers": {"content-type": "application/json"},
        "body": [1, "x"],
    }
    assert await client.validate_request("nope", "users", "read") == {
        "allowed": False,
        "principal": "",
        "reason": "unknown key",
    }
    assert await client.check_rate_limit("c1") == {
        "allowed": True,
        "remaining": 3,
        "reset_after_seconds": 0.0,
        "retry_after_seconds": 0.0,
    }
    health = await client.get_service_health("user-service")
    assert health["instances"][0]["address"] == "h:1"
    with pytest.raises(ValidationError, match="body"):
        await client.proxy_request("user-service", body=b"bytes")
    await client.aclose()


# ---- TLS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_rest_tls_options_build_an_ssl_context(
    pem: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = pem
    made: list[dict[str, Any]] = []
    real = Http1Transport

    def recording(**kwargs: Any) -> Http1Transport:
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr("servicegrid.clients.app_rest.Http1Transport", recording)
    UserServiceClient("https://users:8443", verify=str(cert), cert=(str(cert), str(key)))
    UserServiceClient("https://users:8443", verify=False)
    context = made[0]["verify"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert made[1]["verify"] is False
    assert tls_context(True, None) is True
    with pytest.raises(ValueError, match="TLS"):
        tls_context(str(cert) + "-missing", None)


def test_grpc_tls_options_make_a_secure_channel(
    pem: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = pem
    asked: list[dict[str, Any]] = []
    real = channel_credentials

    def recording(**kwargs: Any) -> grpc.ChannelCredentials:
        asked.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr("servicegrid.clients.grpc_base.channel_credentials", recording)
    client = UserServiceGRPCClient(
        "users:50061",
        use_tls=True,
        ca_path=str(cert),
        cert_path=str(cert),
        key_path=str(key),
        registry=None,
    )
    assert client.config.use_tls
    assert asked == [{"cert_path": str(cert), "key_path": str(key), "ca_path": str(cert)}]
    with pytest.raises(ValueError, match="ca_path"):
        UserServiceGRPCClient("users:50061", use_tls=True, ca_path="/nowhere/ca.pem")
    with pytest.raises(ValueError, match="use_tls"):
        UserServiceGRPCClient("users:50061", ca_path=str(cert))
