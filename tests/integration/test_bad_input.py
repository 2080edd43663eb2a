"""Bad input gets a 4xx naming the field, never a 5xx, on SQLite and on PostgreSQL.

Bad JSON Schemas, unknown services, dangling references between steps and wrong types get 422
with the field's ``loc``; so do values a database or an HTTP peer cannot take (NUL characters,
NaN, lone surrogates, deep nesting), which the fuzzing in ``test_fuzz.py`` and probing found.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.conftest import make_service

JSON = {"content-type": "application/json"}


def locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


def message_at(response: httpx.Response, loc: list[Any]) -> str:
    for error in response.json()["detail"]:
        if error["loc"] == loc:
            return str(error["msg"])
    raise AssertionError(f"no error at {loc}: {response.text}")


def with_schemas(input_schema: Any, output_schema: Any = None) -> dict[str, Any]:
    body = make_service()
    action = body["actions"][0]
    action["input_schema"] = input_schema
    if output_schema is not None:
        action["output_schema"] = output_schema
    return body


BAD_SCHEMAS = [
    ({"type": "no-such-type"}, "not a valid JSON Schema at 'type'"),
    ({"$ref": "#/$defs/missing"}, "'#/$defs/missing' does not resolve"),
    ({"properties": {"a": {"$ref": "#/nowhere"}}}, "at 'properties/a/$ref'"),
    ({"$ref": "http://127.0.0.1:9/remote.json"}, "does not resolve"),  # never fetched
    ({"$ref": "#"}, "loop without end"),
    ({"$schema": 5}, "'$schema' must be a string"),
    ({"$schema": "http://example.com/no-such-draft"}, "unknown '$schema'"),
    ({"pattern": "(unclosed"}, "is not a 'regex'"),
]


async def test_bad_json_schemas_get_422_naming_the_schema(client: httpx.AsyncClient) -> None:
    for schema, fragment in BAD_SCHEMAS:
        response = await client.post("/api/services", json=with_schemas(schema))
        loc = ["body", "actions", 0, "input_schema"]
        assert locs(response) == [loc], schema
        assert fragment in message_at(response, loc), response.text
        output = await client.post("/api/services", json=with_schemas({}, schema))
        assert locs(output) == [["body", "actions", 0, "output_schema"]], schema
    assert (await client.get("/api/services")).json()["total"] == 0


async def test_schemas_that_refer_within_themselves_are_fine(client: httpx.AsyncClient) -> None:
    schema = {
        "$defs": {"url": {"type": "string"}},
        "type": "object",
        "properties": {"document_url": {"$ref": "#/$defs/url"}, "child": {"$ref": "#"}},
    }
    response = await client.post("/api/services", json=with_schemas(schema))
    assert response.status_code == 201, response.text
    meta = {"$ref": "https://json-schema.org/draft/2020-12/schema"}  # bundled, not fetched
    other = await client.post("/api/services", json={**with_schemas(meta), "name": "meta"})
    assert other.status_code == 201, other.text


@pytest.mark.parametrize(
    ("steps", "loc", "fragment"),
    [
        (
            [{"id": "a", "service": "no-such-service", "action": "extract"}],
            ["body", "steps", 0, "service"],
            "no registered service 'no-such-service'",
        ),
        (
            [{"id": "a", "service": "text-extraction", "action": "extract", "next": "nowhere"}],
            ["body", "steps", 0, "next"],
            "no step has the id 'nowhere'",
        ),
        (
            [
                {"id": "f", "fork": ["x", "nowhere"]},
                {"id": "x", "service": "text-extraction", "action": "extract"},
            ],
            ["body", "steps", 0, "fork", 1],
            "no step has the id 'nowhere'",
        ),
        (
            [
                {
                    "id": "a",
                    "service": "text-extraction",
                    "action": "extract",
                    "next": {"on": "label", "cases": {"spam": "nowhere"}, "default": None},
                }
            ],
            ["body", "steps", 0, "next", "cases", "spam"],
            "no step has the id 'nowhere'",
        ),
        (
            [
                {
                    "id": "a",
                    "service": "text-extraction",
                    "action": "extract",
                    "next": {"on": "label", "cases": {"spam": None}, "default": "nowhere"},
                }
            ],
            ["body", "steps", 0, "next", "default"],
            "no step has the id 'nowhere'",
        ),
    ],
    ids=["unknown-service", "dangling-next", "dangling-fork", "dangling-case", "dangling-default"],
)
async def test_unknown_services_and_dangling_references_get_422(
    client: httpx.AsyncClient, steps: list[dict[str, Any]], loc: list[Any], fragment: str
) -> None:
    assert (await client.post("/api/services", json=make_service())).status_code == 201
    body = {"name": "bad", "steps": steps}
    for response in (
        await client.post("/api/workflows", json=body),
        await client.put("/api/workflows/nothing-yet", json={"steps": steps}),
    ):
        assert loc in locs(response)
        assert fragment in message_at(response, loc)
    assert (await client.get("/api/workflows")).json()["total"] == 0


WRONG_TYPES: list[tuple[str, str, dict[str, Any], list[Any]]] = [
    ("POST", "/api/services", {"json": {**make_service(), "name": 42}}, ["body", "name"]),
    (
        "POST",
        "/api/services",
        {"json": with_schemas(["not", "an", "object"])},
        ["body", "actions", 0, "input_schema"],
    ),
    (
        "POST",
        "/api/workflows",
        {"json": {"name": "w", "steps": [{"id": "a", "fork": "x"}]}},
        ["body", "steps", 0, "fork"],
    ),
    (
        "POST",
        "/api/workflows",
        {
            "json": {
                "name": "w",
                "steps": [{"id": "a", "service": "s", "action": "a", "timeout_seconds": "soon"}],
            }
        },
        ["body", "steps", 0, "timeout_seconds"],
    ),
    (
        "POST",
        "/api/workflows",
        {
            "json": {
                "name": "w",
                "steps": [
                    {"id": "a", "service": "s", "action": "a", "retry": {"max_attempts": []}}
                ],
            }
        },
        ["body", "steps", 0, "retry", "max_attempts"],
    ),
    ("POST", "/api/workflows", {"json": {"name": ["w"], "steps": []}}, ["body", "name"]),
    ("POST", "/api/workflows/w/execute", {"json": {"input_data": [1]}}, ["body", "input_data"]),
    ("POST", "/api/workflows/w/execute", {"json": {"context": "x"}}, ["body", "context"]),
    (
        "POST",
        "/api/services/s/actions/a/execute",
        {"json": {"input_data": "text"}},
        ["body", "input_data"],
    ),
    ("GET", "/api/services", {"params": {"page": "first"}}, ["query", "page"]),
    ("GET", "/api/services", {"params": {"page": 10**30}}, ["query", "page"]),
    ("GET", "/api/workflows", {"params": {"per_page": 1.5}}, ["query", "per_page"]),
    ("GET", "/api/workflows/w/executions", {"params": {"status": 3}}, ["query", "status"]),
]


async def test_wrong_types_get_422_naming_the_field(client: httpx.AsyncClient) -> None:
    for method, url, kwargs, loc in WRONG_TYPES:
        response = await client.request(method, url, **kwargs)
        assert loc in locs(response), (method, url, kwargs)


async def test_values_a_database_cannot_store_get_422(client: httpx.AsyncClient) -> None:
    """PostgreSQL refuses NUL in text and NaN in JSON; nothing encodes a lone surrogate."""
    service = (await client.post("/api/services", json=make_service())).json()
    url = f"/api/services/{service['id']}"
    cases: list[tuple[str, str, dict[str, Any], list[Any], str]] = [
        ("PATCH", url, {"json": {"description": "a\x00b"}}, ["body", "description"], "NUL"),
        (
            "POST",
            "/api/workflows",
            {"json": {"name": "nul\x00", "steps": [{"id": "a", "service": "s", "action": "a"}]}},
            ["body", "name"],
            "NUL",
        ),
        (
            "POST",
            "/api/workflows",
            {"json": {"name": "w", "steps": [{"id": "a", "service": "s\x00", "action": "a"}]}},
            ["body", "steps", 0, "service"],
            "NUL",
        ),
        ("PATCH", url, {"content": b'{"metadata": {"a": NaN}}'}, ["body", "metadata"], "finite"),
        ("PATCH", url, {"content": b'{"metadata": {"a": 1e999}}'}, ["body", "metadata"], "finite"),
        (
            "PATCH",
            url,
            {"content": b'{"metadata": {"a": %s}}' % (b"9" * 400)},
            ["body", "metadata"],
            "1.8e308",
        ),
        (
            "POST",
            "/api/workflows/w/execute",
            {"content": b'{"input_data": {"a": ["\\ud800"]}}'},
            ["body", "input_data"],
            "lone surrogates at 'a/0'",
        ),
        (
            "PATCH",
            url,
            {"content": b'{"metadata": {"a": %s}}' % (b"[" * 200 + b"]" * 200)},
            ["body", "metadata"],
            "nested more than 64 levels deep",
        ),
        (
            "PATCH",
            url,
            {
                "json": {
                    "actions": [
                        {"name": "a", "input_schema": {}, "output_schema": {}, "path": "/a\r\nb"}
                    ]
                }
            },
            ["body", "actions", 0, "path"],
            "pattern",
        ),
    ]
    for method, target, kwargs, loc, fragment in cases:
        response = await client.request(method, target, headers=JSON, **kwargs)
        assert loc in locs(response), (target, kwargs)
        assert fragment in message_at(response, loc), response.text
    assert (await client.get(url)).json() == service
    assert (await client.get("/api/workflows")).json()["total"] == 0


async def test_bad_path_parameters_headers_and_context_get_422(client: httpx.AsyncClient) -> None:
    for url, loc in [
        ("/api/services/a%00b", ["path", "service_id"]),
        ("/api/workflows/a%00b/executions", ["path", "workflow_id"]),
        ("/api/executions/a%00b", ["path", "execution_id"]),
        (f"/api/workflows/{'w' * 201}", ["path", "workflow_id"]),
    ]:
        assert locs(await client.get(url)) == [loc]
    execute = "/api/workflows/w/execute"
    tab = await client.post(execute, json={}, headers={"Idempotency-Key": "a\tb"})
    assert locs(tab) == [["header", "Idempotency-Key"]]
    for context in ({"request_id": "a\nb"}, {"project_id": "x" * 201}, {"request_id": ["r"]}):
        response = await client.post(execute, json={"context": context})
        assert locs(response) == [["body", "context"]]
        assert "HTTP header" in message_at(response, ["body", "context"])


async def test_error_bodies_render_whatever_was_sent(client: httpx.AsyncClient) -> None:
    """The 422 repeats the input: a lone surrogate, NaN or deep nesting must not break it."""
    weird = b'{"name": "\\ud800", "endpoint": NaN, "metadata": {"a": %s}}' % (
        b"[" * 900 + b"]" * 900
    )
    response = await client.post("/api/services", content=weird, headers=JSON)
    assert ["body", "name"] in locs(response)
    assert ["body", "metadata"] in locs(response)
    json.loads(response.content)  # plain JSON, whatever it echoes


async def test_calling_an_inactive_service_is_a_conflict(client: httpx.AsyncClient) -> None:
    body = make_service(status="INACTIVE")
    assert (await client.post("/api/services", json=body)).status_code == 201
    response = await client.post(
        "/api/services/text-extraction/actions/extract/execute",
        json={"input_data": {"document_url": "https://x.test/a.pdf"}},
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "ConflictError"
    assert "INACTIVE" in response.json()["detail"]
