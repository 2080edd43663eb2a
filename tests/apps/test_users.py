"""The users service in-process: REST through ASGI, gRPC on a real loopback server, one SQLite file.

Both protocols share one :class:`UserStore`, as ``servicegrid serve users`` runs them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from servicegrid.apps.users import UserCreate, UserServicer, UserStore, UserUpdate, create_app
from servicegrid.apps.users import store as store_module
from servicegrid.clock import iso_utc
from servicegrid.errors import ConflictError, ResourceNotFoundError
from servicegrid.proto import common_pb2, user_service_pb2, user_service_pb2_grpc
from servicegrid.runtime import ServiceRegistration, create_server
from servicegrid.settings import Settings, load_settings
from servicegrid.testing import FakeClock

_pb = user_service_pb2
GENERATED_ID = re.compile(r"user-[0-9a-f]{12}")
DANA = {"username": "dana", "email": "dana@example.com", "full_name": "Dana", "interests": ["go"]}


def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/data/users.db"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(user_service_database_url=db_url(tmp_path), sample_data=True)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[UserStore]:
    async with UserStore.from_settings(settings) as opened:
        yield opened


@pytest.fixture
async def client(settings: Settings, store: UserStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings, store=store))
    async with httpx.AsyncClient(transport=transport, base_url="http://users") as http:
        yield http


@pytest.fixture
async def stub(store: UserStore) -> AsyncIterator[user_service_pb2_grpc.UserServiceAsyncStub]:
    registration = ServiceRegistration.from_descriptor(
        _pb.DESCRIPTOR.services_by_name["UserService"],
        user_service_pb2_grpc.add_UserServiceServicer_to_server,
        UserServicer(store),
    )
    running = await create_server(
        "127.0.0.1:0", services=[registration], registry=CollectorRegistry()
    )
    await running.server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield user_service_pb2_grpc.UserServiceStub(channel)
    finally:
        await channel.close()
        await running.server.stop(None)


def problem_fields(answer: httpx.Response) -> list[str]:
    """The body fields FastAPI's 422 names (``["body", "email"]`` -> ``"email"``)."""
    return [".".join(str(part) for part in item["loc"][1:]) for item in answer.json()["detail"]]


# ---- REST ---------------------------------------------------------------------------------


async def test_sample_users_are_there(client: httpx.AsyncClient) -> None:
    alice = (await client.get("/users/user-123")).json()
    assert alice["username"] == "alice"
    assert alice["email"] == "alice@example.com"
    assert alice["full_name"] == "Alice Example"
    assert alice["interests"] == ["machine learning", "python"]
    assert alice["created_at"].endswith("Z")
    listing = (await client.get("/users")).json()
    assert [u["id"] for u in listing["items"]] == ["user-123", "user-456", "user-789"]
    assert listing | {"items": []} == {"items": [], "total": 3, "page": 1, "per_page": 20}


async def test_rest_create_read_update_delete(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/users",
        json={**DANA, "full_name": "  Dana Doe \n", "interests": [" go", "go ", "rust", "go"]},
    )
    assert answer.status_code == 201
    dana = answer.json()
    assert GENERATED_ID.fullmatch(dana["id"])
    assert dana["full_name"] == "Dana Doe"
    assert dana["interests"] == ["go", "rust"]
    assert dana["created_at"] == dana["updated_at"]
    assert (await client.get(f"/users/{dana['id']}")).json() == dana

    changed = await client.patch(
        f"/users/{dana['id']}", json={"username": "dana2", "interests": []}
    )
    assert changed.status_code == 200
    assert changed.json() == {**dana, "username": "dana2", "interests": [], "updated_at": ANY}
    unchanged = await client.patch(f"/users/{dana['id']}", json={})
    assert unchanged.json() == changed.json()

    deleted = await client.delete(f"/users/{dana['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": dana["id"], "deleted": True}
    gone = await client.get(f"/users/{dana['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"] == "ResourceNotFoundError"
    assert dana["id"] in gone.json()["detail"]
    assert (await client.delete(f"/users/{dana['id']}")).status_code == 404
    assert (await client.patch(f"/users/{dana['id']}", json={})).status_code == 404


async def test_rest_takes_a_given_id(client: httpx.AsyncClient) -> None:
    answer = await client.post("/users", json={**DANA, "id": "team:dana.1"})
    assert answer.status_code == 201
    assert answer.json()["id"] == "team:dana.1"
    assert (await client.get("/users/team:dana.1")).json()["username"] == "dana"


async def test_rest_pages_in_creation_order(client: httpx.AsyncClient) -> None:
    made = []
    for n in range(4):
        body = {"id": f"z-{n}", "username": f"user{n}", "email": f"user{n}@example.com"}
        made.append((await client.post("/users", json=body)).json()["id"])
    expected = ["user-123", "user-456", "user-789", *made]
    seen = []
    for page in (1, 2, 3):
        answer = (await client.get("/users", params={"page": page, "per_page": 3})).json()
        assert (answer["total"], answer["page"], answer["per_page"]) == (7, page, 3)
        seen += [u["id"] for u in answer["items"]]
    assert seen == expected
    beyond = (await client.get("/users", params={"page": 9, "per_page": 3})).json()
    assert (beyond["items"], beyond["total"]) == ([], 7)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "user-123", "username": "x", "email": "x@example.com"}, "id"),
        ({"username": "alice", "email": "x@example.com"}, "username"),
        ({"username": "x", "email": "alice@example.com"}, "email"),
    ],
)
async def test_rest_refuses_taken_values(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/users", json=body)
    assert answer.status_code == 409
    assert answer.json()["error"] == "ConflictError"
    assert answer.json()["detail"].startswith(f"{field}: ")


async def test_rest_update_refuses_a_taken_username(client: httpx.AsyncClient) -> None:
    answer = await client.patch("/users/user-456", json={"email": "alice@example.com"})
    assert answer.status_code == 409
    assert answer.json()["detail"].startswith("email: ")
    # keeping one's own value is no conflict
    same = await client.patch("/users/user-123", json={"username": "alice"})
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "dana"}, "email"),
        ({**DANA, "email": "dana.example.com"}, "email"),
        ({**DANA, "email": "dana@localhost"}, "email"),
        ({**DANA, "email": "da na@example.com"}, "email"),
        ({**DANA, "email": "@example.com"}, "email"),
        ({**DANA, "email": "a@b@example.com"}, "email"),
        ({**DANA, "email": "d" * 250 + "@x.io"}, "email"),
        ({**DANA, "username": "dana doe"}, "username"),
        ({**DANA, "username": ""}, "username"),
        ({**DANA, "username": "d" * 65}, "username"),
        ({**DANA, "full_name": "x" * 201}, "full_name"),
        ({**DANA, "full_name": "bell\x07"}, "full_name"),
        ({**DANA, "full_name": "nul\x00"}, "full_name"),
        ({**DANA, "interests": ["ok", "   "]}, "interests.1"),
        ({**DANA, "interests": ["x" * 65]}, "interests.0"),
        ({**DANA, "interests": [f"i{n}" for n in range(51)]}, "interests"),
        ({**DANA, "interests": "go"}, "interests"),
        ({**DANA, "id": "-starts-badly"}, "id"),
        ({**DANA, "id": "has space"}, "id"),
        ({**DANA, "id": None}, "id"),
        ({**DANA, "nickname": "d"}, "nickname"),
    ],
)
async def test_rest_create_names_the_bad_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/users", json=body)
    assert answer.status_code == 422
    assert field in problem_fields(answer)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": None}, "username"),
        ({"interests": None}, "interests"),
        ({"email": "nope"}, "email"),
        ({"full_name": "\x1b[31m"}, "full_name"),
        ({"id": "user-999"}, "id"),
    ],
)
async def test_rest_update_names_the_bad_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = await client.patch("/users/user-123", json=body)
    assert answer.status_code == 422
    assert field in problem_fields(answer)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/users?page=0", "page"),
        ("/users?per_page=101", "per_page"),
        ("/users?per_page=0", "per_page"),
        ("/users?page=many", "page"),
        ("/users/-bad", "user_id"),
        ("/users/bad%00id", "user_id"),
    ],
)
async def test_rest_parameters_are_checked(
    client: httpx.AsyncClient, path: str, field: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 422
    assert [item["loc"][-1] for item in answer.json()["detail"]] == [field]


async def test_openapi_documents_the_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "servicegrid users"
    create = spec["paths"]["/users"]["post"]["responses"]
    assert {"201", "409", "422"} <= create.keys()
    update = spec["paths"]["/users/{user_id}"]["patch"]["responses"]
    assert {"200", "404", "409", "422"} <= update.keys()
    patch_schema = spec["components"]["schemas"]["UserUpdate"]
    assert patch_schema["additionalProperties"] is False
    assert "anyOf" not in patch_schema["properties"]["username"]  # null is not accepted


async def test_health(client: httpx.AsyncClient) -> None:
    answer = await client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "healthy", "service": "users", "database": "sqlite"}


def test_app_opens_its_own_store(settings: Settings) -> None:
    with TestClient(create_app(settings)) as http:
        assert http.get("/users/user-123").json()["username"] == "alice"
        assert http.post("/users", json=DANA).status_code == 201
    with TestClient(create_app(settings)) as http:
        assert http.get("/users").json()["total"] == 4


# ---- gRPC ---------------------------------------------------------------------------------


async def test_grpc_create_read_update_delete(
    stub: user_service_pb2_grpc.UserServiceAsyncStub, client: httpx.AsyncClient
) -> None:
    made = await stub.CreateUser(
        _pb.CreateUserRequest(username="dana", email="dana@example.com", interests=["go", "go"])
    )
    assert GENERATED_ID.fullmatch(made.id)
    assert (made.full_name, list(made.interests)) == ("", ["go"])
    assert await stub.GetUser(_pb.GetUserRequest(user_id=made.id)) == made
    # the REST side reads the same store
    assert (await client.get(f"/users/{made.id}")).json()["email"] == "dana@example.com"

    renamed = await stub.UpdateUser(_pb.UpdateUserRequest(user_id=made.id, full_name=" Dana "))
    assert (renamed.full_name, renamed.username, list(renamed.interests)) == (
        "Dana",
        "dana",
        ["go"],
    )
    cleared = await stub.UpdateUser(
        _pb.UpdateUserRequest(user_id=made.id, interests=common_pb2.StringList())
    )
    assert list(cleared.interests) == []
    blanked = await stub.UpdateUser(_pb.UpdateUserRequest(user_id=made.id, full_name=""))
    assert blanked.full_name == ""

    listing = await stub.ListUsers(_pb.ListUsersRequest())
    assert (listing.total, listing.page, listing.per_page) == (4, 1, 20)
    assert [u.id for u in listing.items][-1] == made.id
    second = await stub.ListUsers(_pb.ListUsersRequest(page=2, per_page=3))
    assert [u.id for u in second.items] == [made.id]

    deleted = await stub.DeleteUser(_pb.DeleteUserRequest(user_id=made.id))
    assert (deleted.id, deleted.deleted) == (made.id, True)
    with pytest.raises(grpc.aio.AioRpcError) as lost:
        await stub.GetUser(_pb.GetUserRequest(user_id=made.id))
    assert lost.value.code() == grpc.StatusCode.NOT_FOUND
    assert made.id in (lost.value.details() or "")


@pytest.mark.parametrize(
    ("call", "request_message", "field"),
    [
        ("CreateUser", _pb.CreateUserRequest(username="dana", email="nope"), "email"),
        ("CreateUser", _pb.CreateUserRequest(username="da na", email="d@x.io"), "username"),
        (
            "CreateUser",
            _pb.CreateUserRequest(username="dana", email="d@x.io", interests=["a", " "]),
            "interests[1]",
        ),
        ("CreateUser", _pb.CreateUserRequest(id="?", username="dana", email="d@x.io"), "id"),
        ("GetUser", _pb.GetUserRequest(), "user_id"),
        ("GetUser", _pb.GetUserRequest(user_id="bad\x00id"), "user_id"),
        ("UpdateUser", _pb.UpdateUserRequest(user_id="user-123", email=""), "email"),
        ("UpdateUser", _pb.UpdateUserRequest(user_id="user-123", full_name="\x01"), "full_name"),
        ("DeleteUser", _pb.DeleteUserRequest(user_id=" "), "user_id"),
        ("ListUsers", _pb.ListUsersRequest(per_page=101), "per_page"),
        ("ListUsers", _pb.ListUsersRequest(page=-1), "page"),
    ],
)
async def test_grpc_invalid_argument_names_the_field(
    stub: user_service_pb2_grpc.UserServiceAsyncStub,
    call: str,
    request_message: Any,
    field: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await getattr(stub, call)(request_message)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (_pb.CreateUserRequest(id="user-456", username="x", email="x@x.io"), "id"),
        (_pb.CreateUserRequest(username="bob", email="x@x.io"), "username"),
        (_pb.CreateUserRequest(username="x", email="bob@example.com"), "email"),
    ],
)
async def test_grpc_already_exists_names_the_field(
    stub: user_service_pb2_grpc.UserServiceAsyncStub,
    request_message: _pb.CreateUserRequest,
    field: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateUser(request_message)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (refused.value.details() or "").startswith(f"{field}: ")


async def test_grpc_unknown_ids_are_not_found(
    stub: user_service_pb2_grpc.UserServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as update_refused:
        await stub.UpdateUser(_pb.UpdateUserRequest(user_id="nobody", username="x"))
    assert update_refused.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as delete_refused:
        await stub.DeleteUser(_pb.DeleteUserRequest(user_id="nobody"))
    assert delete_refused.value.code() == grpc.StatusCode.NOT_FOUND


# ---- the store ----------------------------------------------------------------------------


async def test_data_survives_reopening(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    async with UserStore(url, sample_data=True) as store:
        made = await store.create(UserCreate(username="dana", email="dana@example.com"))
        await store.delete("user-456")
    async with UserStore(url, sample_data=True) as store:  # not empty: no second seeding
        assert await store.get(made.id) == made
        items, total = await store.list(1, 10)
    assert [user.id for user in items] == ["user-123", "user-789", made.id]
    assert total == 3


async def test_no_sample_data_unless_asked(tmp_path: Path) -> None:
    async with UserStore(db_url(tmp_path)) as store:
        assert await store.list() == ([], 0)


async def test_times_come_from_the_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    async with UserStore(db_url(tmp_path), clock=clock) as store:
        made = await store.create(UserCreate(username="dana", email="dana@example.com"))
        clock.advance(90.0)
        changed = await store.update(made.id, UserUpdate(full_name="Dana"))
    assert made.created_at == iso_utc(clock.wall() - 90.0)
    assert (changed.created_at, changed.updated_at) == (made.created_at, iso_utc(clock.wall()))


async def test_store_errors_are_typed(store: UserStore) -> None:
    with pytest.raises(ResourceNotFoundError):
        await store.get("nobody")
    with pytest.raises(ConflictError, match=r"^username: 'bob'"):
        await store.update("user-123", UserUpdate(username="bob"))


async def test_on_postgresql(postgres_url: str) -> None:
    async with UserStore(postgres_url, sample_data=True) as store:
        assert store.backend == "postgresql"
        made = await store.create(UserCreate(id="pg-1", username="dana", email="d@example.com"))
        with pytest.raises(ConflictError, match=r"^email: "):
            await store.create(UserCreate(username="erin", email="d@example.com"))
        with pytest.raises(ConflictError, match=r"^username: "):
            await store.update("user-123", UserUpdate(username="dana"))
        await store.delete("user-456")
    async with UserStore(postgres_url, sample_data=True) as store:
        items, total = await store.list(1, 3)
        assert [user.id for user in items] == ["user-123", "user-789", made.id]
        assert total == 3


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return db_url(tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url


async def test_the_database_refusing_a_taken_value_names_it(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def passes(*_args: object, **_kwargs: object) -> None:
        """The check as a concurrent writer sees it: nothing taken yet."""

    async with UserStore(any_db_url, sample_data=True) as store:
        monkeypatch.setattr(store_module, "_refuse_taken", passes)
        with pytest.raises(ConflictError, match=r"^email: 'bob@example.com'"):
            await store.create(UserCreate(username="x", email="bob@example.com"))
        with pytest.raises(ConflictError, match=r"^username: 'bob'"):
            await store.update("user-123", UserUpdate(username="bob"))
        assert (await store.get("user-123")).username == "alice"
