"""``POST /v1/chat/completions`` on a real server, driven by the official ``openai`` client.

The chat router runs on a bare FastAPI app with a stand-in ``app.state`` and a small
ServiceError handler (a test fixture, not the gateway's ``create_app``), in front of
real local OpenAI-compatible hosts (:mod:`tests.support.llm_hosts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from servicegrid.errors import ServiceError, ValidationError
from servicegrid.gateway.routes.chat import chat_router
from servicegrid.llm import DistributedLLMClient, LLMHost
from servicegrid.transports.base import Reply
from servicegrid.transports.mock import MockTransport
from tests.support.llm_hosts import LLMHostStandIns
from tests.support.threaded_server import ThreadedServer

MESSAGES: list[Any] = [{"role": "user", "content": "Hi"}]


def build_app(llm: DistributedLLMClient | None, *, model: str | None = None) -> FastAPI:
    """Test fixture: the chat router with a stand-in state and error handler."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if llm is not None:
                await stack.enter_async_context(llm)
            yield

    app = FastAPI(lifespan=lifespan)
    app.state.clients = SimpleNamespace(llm=llm)
    app.state.settings = SimpleNamespace(llm_model=model)
    app.include_router(chat_router())

    async def openai_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        fields = exc.validation_errors if isinstance(exc, ValidationError) else []
        error = {
            "message": str(exc),
            "type": exc.category.value,
            "param": fields[0]["field"] if fields else None,
            "code": None,
        }
        return JSONResponse({"error": error}, status_code=exc.http_status)

    app.add_exception_handler(ServiceError, openai_error)
    return app


@contextlib.contextmanager
def gateway(llm: DistributedLLMClient | None, *, model: str | None = None) -> Iterator[str]:
    """The test app on a real uvicorn server; yields its base URL."""
    with ThreadedServer(build_app(llm, model=model), lifespan="on", name="gateway") as server:
        yield server.url


def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="caller-key", max_retries=0, timeout=10)


@pytest.fixture(scope="module")
def servers() -> Iterator[LLMHostStandIns]:
    with LLMHostStandIns(2) as running:
        yield running


@pytest.fixture
def hosts(servers: LLMHostStandIns) -> LLMHostStandIns:
    """The two stand-ins, alive, well and with their counts at zero."""
    servers.reset()
    return servers


@pytest.fixture
def url(hosts: LLMHostStandIns) -> Iterator[str]:
    """A gateway over both stand-ins (round robin, a fresh client per test)."""
    llm = DistributedLLMClient([LLMHost(name=h.name, url=f"{h.url}/v1") for h in hosts])
    with gateway(llm) as running:
        yield running


def stream_text(url: str) -> str:
    chunks = openai_client(url).chat.completions.create(
        model="standin-llm", messages=MESSAGES, stream=True
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


# ---- completions -------------------------------------------------------------------------


def test_a_completion_comes_back_through_the_gateway(url: str) -> None:
    answer = openai_client(url).chat.completions.create(model="standin-llm", messages=MESSAGES)
    assert answer.choices[0].message.content in ("Hello from host1", "Hello from host2")
    assert answer.model == "standin-llm"
    assert answer.usage is not None
    assert answer.usage.total_tokens == 6


def test_a_streamed_completion_arrives_as_server_sent_events(url: str) -> None:
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json={"messages": MESSAGES, "stream": True}
    ) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        assert raw.read().endswith(b"data: [DONE]\n\n")
    assert stream_text(url) in ("Hello from host1", "Hello from host2")


def test_both_requests_succeed_when_a_host_dies_between_them(
    hosts: LLMHostStandIns, url: str
) -> None:
    client = openai_client(url)
    first = client.chat.completions.create(model="m", messages=MESSAGES)
    assert first.choices[0].message.content
    hosts[1].die()
    for _ in range(3):  # round robin reaches the dead host within two
        answer = client.chat.completions.create(model="m", messages=MESSAGES)
        assert answer.choices[0].message.content == "Hello from host1"


def test_a_stream_broken_before_its_first_byte_fails_over(hosts: LLMHostStandIns, url: str) -> None:
    hosts[0].break_streams_after(0)
    assert [stream_text(url) for _ in range(2)] == ["Hello from host2"] * 2
    assert hosts[0].served >= 1  # it was tried


def test_a_stream_broken_after_its_first_byte_ends_with_an_error_event(
    hosts: LLMHostStandIns, url: str
) -> None:
    for host in hosts:
        host.break_streams_after(2)  # the role chunk and "Hello", then the cut
    chunks = openai_client(url).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    text: list[str] = []

    def read_all() -> None:
        text.extend(chunk.choices[0].delta.content or "" for chunk in chunks)

    with pytest.raises(openai.APIError, match="stream broke off") as caught:
        read_all()
    assert "".join(text) == "Hello"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "connection_lost"


def test_the_model_comes_from_the_settings_when_the_request_names_none(
    hosts: LLMHostStandIns,
) -> None:
    llm = DistributedLLMClient([LLMHost(name="host1", url=hosts[0].url)])
    with gateway(llm, model="configured-llm") as url:
        answer = httpx.post(f"{url}/v1/chat/completions", json={"messages": MESSAGES})
        assert answer.status_code == 200
        assert answer.json()["model"] == "configured-llm"
        named = httpx.post(f"{url}/v1/chat/completions", json={"messages": MESSAGES, "model": "x"})
        assert named.json()["model"] == "x"


def test_no_host_configured_is_a_503_naming_the_setting() -> None:
    with gateway(None) as url, pytest.raises(openai.APIStatusError) as caught:
        openai_client(url).chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert "SERVICEGRID_LLM_URLS" in caught.value.message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "messages"),
        ({"messages": "Hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"content": "Hi"}]}, "messages.0.role"),
        ({"messages": ["Hi"]}, "messages.0"),
        ({"messages": MESSAGES, "stream": "yes"}, "stream"),
        ({"messages": MESSAGES, "model": 3}, "model"),
        ([MESSAGES], ""),
        (b"{not json", ""),
        (b"", ""),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field(
    hosts: LLMHostStandIns, url: str, body: Any, field: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = httpx.post(
        f"{url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == field
    assert hosts[0].served + hosts[1].served == 0


# ---- what goes upstream, and what comes back -----------------------------------------------


def mocked(status: int, body: bytes) -> tuple[DistributedLLMClient, MockTransport]:
    transport = MockTransport(
        lambda call: Reply(status, {"content-type": "application/json"}, body)
    )
    return DistributedLLMClient(
        [LLMHost(name="mock", url="http://llm.invalid")], transport=transport
    ), transport


def test_the_body_passes_through_with_the_request_id_and_without_the_callers_key() -> None:
    llm, transport = mocked(200, b'{"choices": []}')
    sent = {"messages": MESSAGES, "temperature": 0.2, "tools": [{"type": "function"}]}
    with gateway(llm, model="configured-llm") as url:
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json=sent,
            headers={"authorization": "Bearer caller-key", "x-request-id": "req-7"},
        )
    assert answer.status_code == 200
    assert answer.json() == {"choices": []}
    (call,) = transport.calls
    headers = dict(call.headers)
    assert headers["x-request-id"] == "req-7"
    assert "authorization" not in headers
    assert json.loads(call.body) == {**sent, "model": "configured-llm"}


def test_an_upstream_4xx_is_relayed_as_it_is() -> None:
    error = b'{"error": {"message": "bad temperature", "type": "invalid_request_error"}}'
    llm, _ = mocked(400, error)
    with gateway(llm) as url:
        answer = httpx.post(f"{url}/v1/chat/completions", json={"messages": MESSAGES})
    assert answer.status_code == 400
    assert answer.content == error


@pytest.mark.parametrize(
    ("status", "body", "relayed"),
    [
        (401, b'{"error": {"message": "bad key"}}', 502),  # the gateway's key, not the caller's
        (404, b"Not Found", 404),  # not OpenAI's shape: the table's error instead
        (501, b'{"error": {"message": "no"}}', 501),
        (200, b"<html>", 502),
    ],
)
def test_an_upstream_answer_the_caller_cannot_use_becomes_a_gateway_error(
    status: int, body: bytes, relayed: int
) -> None:
    llm, _ = mocked(status, body)
    with gateway(llm) as url:
        answer = httpx.post(f"{url}/v1/chat/completions", json={"messages": MESSAGES})
    assert answer.status_code == relayed
    assert "message" in answer.json()["error"]


# ---- a caller that goes away -------------------------------------------------------------


class EndlessEvents:
    """An upstream that streams an event every 10 ms until its connection is dropped."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-type", b"text/event-stream")]})
        sending = asyncio.ensure_future(self._send_forever(send))
        while (await receive())["type"] != "http.disconnect":
            pass
        sending.cancel()
        self.closed.set()

    async def _send_forever(self, send: Send) -> None:
        chunk = b'data: {"choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n'
        while True:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0.01)


def test_a_caller_that_goes_away_closes_the_upstream_stream() -> None:
    upstream = EndlessEvents()
    with ThreadedServer(upstream, name="endless", graceful_shutdown=0) as host:
        llm = DistributedLLMClient([LLMHost(name="endless", url=host.url)])
        with gateway(llm) as url:
            body = {"messages": MESSAGES, "stream": True}
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as answer:
                assert next(answer.iter_raw()).startswith(b"data: ")
            assert upstream.closed.wait(timeout=5)
