"""The service registry endpoints under /api/services, against SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import make_service, running


async def register(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/services", json=make_service(**body))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def error_locs(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [".".join(str(part) for part in error["loc"]) for error in response.json()["detail"]]


async def test_register_returns_the_service(client: httpx.AsyncClient) -> None:
    service = await register(client)
    assert service["name"] == "text-extraction"
    assert service["endpoint"] == "http://text-extraction-service:8000/api"
    assert service["status"] == "ACTIVE"
    assert service["metadata"] == {"version": "1.0.0", "provider": "servicegrid"}
    [action] = service["actions"]
    assert action["name"] == "extract"
    assert action["method"] == "POST"
    assert action["path"] is None
    assert action["input_schema"]["required"] == ["document_url"]
    assert service["id"]
    assert service["created_at"] == service["updated_at"]


async def test_get_by_id_and_by_name(client: httpx.AsyncClient) -> None:
    service = await register(client)
    by_id = await client.get(f"/api/services/{service['id']}")
    by_name = await client.get("/api/services/text-extraction")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == service


async def test_update_changes_only_the_given_fields(client: httpx.AsyncClient) -> None:
    service = await register(client)
    response = await client.put(
        f"/api/services/{service['id']}",
        json={
            "name": "text-extraction-v2",
            "description": "Improved text extraction service",
            "endpoint": "http://text-extraction-service-v2:8000/api",
            "status": "ACTIVE",
        },
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["id"] == service["id"]
    assert updated["name"] == "text-extraction-v2"
    assert updated["endpoint"] == "http://text-extraction-service-v2:8000/api"
    assert updated["actions"] == service["actions"]
    assert updated["metadata"] == service["metadata"]
    assert updated["created_at"] == service["created_at"]
    assert updated["updated_at"] >= service["updated_at"]

    patched = await client.patch(f"/api/services/{service['id']}", json={"status": "INACTIVE"})
    assert patched.status_code == 200
    assert patched.json()["status"] == "INACTIVE"
    assert patched.json()["name"] == "text-extraction-v2"
    assert (await client.get("/api/services/text-extraction")).status_code == 404


async def test_update_replaces_actions(client: httpx.AsyncClient) -> None:
    service = await register(client)
    actions = [
        {
            "name": "summarize",
            "description": "Summarize",
            "input_schema": {"type": "object"},
            "output_schema": {"type": "string"},
            "method": "PUT",
            "path": "/summarize",
        }
    ]
    response = await client.patch(f"/api/services/{service['id']}", json={"actions": actions})
    assert response.status_code == 200, response.text
    assert response.json()["actions"] == actions


async def test_deregister(client: httpx.AsyncClient) -> None:
    service = await register(client)
    response = await client.delete(f"/api/services/{service['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": service["id"], "name": service["name"], "deregistered": True}
    assert (await client.get(f"/api/services/{service['id']}")).status_code == 404
    assert (await client.delete(f"/api/services/{service['id']}")).status_code == 404
    # the name is free again
    await register(client)


async def test_unknown_service_is_404_naming_it(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/services/nope"),
        await client.put("/api/services/nope", json={"description": "x"}),
        await client.patch("/api/services/nope", json={"description": "x"}),
        await client.delete("/api/services/nope"),
    ):
        assert response.status_code == 404
        body = response.json()
        assert body["error"] == "ResourceNotFoundError"
        assert body["resource_type"] == "service"
        assert body["resource_id"] == "nope"
        assert "nope" in body["detail"]


async def test_the_same_service_again_is_200_and_a_different_one_409(
    client: httpx.AsyncClient,
) -> None:
    first = await register(client)
    again = await client.post("/api/services", json=make_service())
    assert again.status_code == 200, again.text
    assert again.json() == first
    assert (await client.get("/api/services")).json()["total"] == 1

    response = await client.post("/api/services", json=make_service(endpoint="http://x.test/"))
    assert response.status_code == 409
    assert response.json()["error"] == "ConflictError"
    assert "text-extraction" in response.json()["detail"]


async def test_rename_onto_a_taken_name_is_409(client: httpx.AsyncClient) -> None:
    await register(client, name="a")
    b = await register(client, name="b")
    response = await client.patch(f"/api/services/{b['id']}", json={"name": "a"})
    assert response.status_code == 409
    assert (await client.get(f"/api/services/{b['id']}")).json()["name"] == "b"


async def test_list_paginates_with_totals(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await register(client, name=f"svc-{index}")
    first = (await client.get("/api/services", params={"per_page": 2})).json()
    assert (first["total"], first["page"], first["per_page"], first["pages"]) == (5, 1, 2, 3)
    assert [s["name"] for s in first["items"]] == ["svc-0", "svc-1"]
    last = (await client.get("/api/services", params={"page": 3, "per_page": 2})).json()
    assert [s["name"] for s in last["items"]] == ["svc-4"]
    beyond = (await client.get("/api/services", params={"page": 9, "per_page": 2})).json()
    assert beyond["items"] == []
    assert beyond["total"] == 5
    default = (await client.get("/api/services")).json()
    assert (default["page"], default["per_page"], len(default["items"])) == (1, 20, 5)


async def test_list_of_nothing(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/services")).json()
    assert body == {"items": [], "total": 0, "page": 1, "per_page": 20, "pages": 0}


async def test_list_filters_by_status(client: httpx.AsyncClient) -> None:
    await register(client, name="on-1")
    await register(client, name="off", status="INACTIVE")
    await register(client, name="on-2")
    active = (await client.get("/api/services", params={"status": "ACTIVE"})).json()
    assert [s["name"] for s in active["items"]] == ["on-1", "on-2"]
    assert active["total"] == 2
    inactive = (await client.get("/api/services", params={"status": "INACTIVE"})).json()
    assert [s["name"] for s in inactive["items"]] == ["off"]
    bad = await client.get("/api/services", params={"status": "SLEEPING"})
    assert error_locs(bad) == ["query.status"]


@pytest.mark.parametrize("per_page", [0, 1000, -1])
async def test_per_page_out_of_range_is_422(client: httpx.AsyncClient, per_page: int) -> None:
    response = await client.get("/api/services", params={"per_page": per_page})
    assert error_locs(response) == ["query.per_page"]


async def test_page_zero_is_422(client: httpx.AsyncClient) -> None:
    assert error_locs(await client.get("/api/services", params={"page": 0})) == ["query.page"]


def with_action(**changes: Any) -> dict[str, Any]:
    body = make_service()
    body["actions"][0].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (with_action(input_schema={"type": "no-such-type"}), "body.actions.0.input_schema"),
        (with_action(output_schema={"minLength": -1}), "body.actions.0.output_schema"),
        (with_action(input_schema="not an object"), "body.actions.0.input_schema"),
        (with_action(method="FETCH"), "body.actions.0.method"),
        (with_action(path="no-leading-slash"), "body.actions.0.path"),
        (make_service(endpoint="not a url"), "body.endpoint"),
        (make_service(endpoint="ftp://files.example.com/api"), "body.endpoint"),
        (make_service(name=""), "body.name"),
        ({**make_service(), "name": 42}, "body.name"),
        (make_service(status="SLEEPING"), "body.status"),
        (make_service(metadata=["not", "a", "dict"]), "body.metadata"),
        (make_service(actions={"name": "extract"}), "body.actions"),
        (make_service(unexpected=True), "body.unexpected"),
    ],
)
async def test_bad_registration_is_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], loc: str
) -> None:
    response = await client.post("/api/services", json=body)
    assert loc in error_locs(response)
    assert (await client.get("/api/services")).json()["total"] == 0


async def test_invalid_schema_message_explains(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/services", json=with_action(input_schema={"type": "no-such-type"})
    )
    [error] = response.json()["detail"]
    assert "not a valid JSON Schema" in error["msg"]


async def test_duplicate_action_names_are_422(client: httpx.AsyncClient) -> None:
    body = make_service()
    body["actions"].append(dict(body["actions"][0]))
    response = await client.post("/api/services", json=body)
    assert error_locs(response) == ["body.actions"]
    assert "extract" in response.json()["detail"][0]["msg"]


async def test_bad_update_is_422(client: httpx.AsyncClient) -> None:
    service = await register(client)
    url = f"/api/services/{service['id']}"
    assert error_locs(await client.patch(url, json={"endpoint": "nope"})) == ["body.endpoint"]
    assert error_locs(await client.patch(url, json={"name": None})) == ["body.name"]
    bad_schema = with_action(input_schema={"type": 7})["actions"]
    locs = error_locs(await client.put(url, json={"actions": bad_schema}))
    assert locs == ["body.actions.0.input_schema"]
    assert (await client.get(url)).json() == service


async def test_services_survive_a_restart(db_url: str) -> None:
    async with running(db_url) as first:
        service = await register(first)
        await register(first, name="other", status="INACTIVE")
    async with running(db_url) as second:
        assert (await second.get(f"/api/services/{service['id']}")).json() == service
        listing = (await second.get("/api/services")).json()
        assert [s["name"] for s in listing["items"]] == ["text-extraction", "other"]
        again = await second.post("/api/services", json=make_service())
        assert again.status_code == 200
        different = await second.post("/api/services", json=make_service(description="x"))
        assert different.status_code == 409


async def test_health_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["checks"]["database"]["status"] == "healthy"
