"""Http1Transport against servers that answer with exactly the bytes each test chooses."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servicegrid.errors import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    ReadTimeout,
    ValidationError,
)
from servicegrid.transports import Call
from servicegrid.transports.http import PhaseTimeouts, PoolLimits
from servicegrid.transports.http1 import Http1Transport
from tests.support.threaded_server import free_port
from tests.transports.raw_http import Answer, RawHttpServer, TunnelProxy, ok


@pytest.fixture
async def server() -> AsyncIterator[RawHttpServer]:
    running = RawHttpServer()
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def transport(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Http1Transport]:
    for name in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    made = Http1Transport(timeouts=PhaseTimeouts(connect=5.0, read=5.0, write=5.0, pool=5.0))
    yield made
    await made.aclose()


def get(url: str, **options: object) -> Call:
    return Call("GET", url, (("accept", "*/*"),), options=options)


async def test_keep_alive_reuses_one_connection(
    server: RawHttpServer, transport: Http1Transport
) -> None:
    for _ in range(3):
        reply = await transport.asend(get(f"{server.url}/a?x=1"))
        assert (reply.status, reply.body) == (200, b"ok")
    assert server.connections == 1
    head = server.requests[0][0]
    assert head.startswith(b"GET /a?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}".encode() in head


async def test_a_body_is_sent_with_its_length(
    server: RawHttpServer, transport: Http1Transport
) -> None:
    call = Call("POST", f"{server.url}/echo", (("content-type", "application/json"),), b'{"a":1}')
    assert (await transport.asend(call)).status == 200
    head, body = server.requests[0]
    assert b"Content-Length: 7\r\n" in head
    assert body == b'{"a":1}'


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef",
    ],
    ids=["chunked", "after 100 Continue"],
)
async def test_bodies_however_they_are_framed(
    answer: bytes, server: RawHttpServer, transport: Http1Transport
) -> None:
    server.answers.append(Answer(answer))
    reply = await transport.asend(get(server.url))
    assert (reply.status, reply.body) == (200, b"abcdef")


async def test_a_body_that_ends_with_the_connection(
    server: RawHttpServer, transport: Http1Transport
) -> None:
    server.answers.append(Answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", True))
    assert (await transport.asend(get(server.url))).body == b"all of it"
    assert (await transport.asend(get(server.url))).body == b"ok"
    assert server.connections == 2  # the first one was not kept


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ],
)
async def test_compressed_answers_are_decoded(
    encoding: str, encode: object, server: RawHttpServer, transport: Http1Transport
) -> None:
    body = encode(b"x" * 1000)  # type: ignore[operator]
    server.answers.append(ok(body, f"Content-Encoding: {encoding}"))
    reply = await transport.asend(get(server.url))
    assert reply.body == b"x" * 1000
    assert reply.header("content-encoding") == encoding


async def test_head_and_no_content_answers_have_no_body(
    server: RawHttpServer, transport: Http1Transport
) -> None:
    server.answers.append(Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"))
    reply = await transport.asend(Call("HEAD", server.url))
    assert (reply.status, reply.body, reply.header("content-length")) == (200, b"", "5")
    server.answers.append(Answer(b"HTTP/1.1 204 No Content\r\n\r\n"))
    assert (await transport.asend(get(server.url))).status == 204
    assert (await transport.asend(get(server.url))).body == b"ok"


async def test_a_pooled_connection_the_server_dropped_is_replaced_transparently(
    server: RawHttpServer, transport: Http1Transport
) -> None:
    server.answers.append(Answer(ok().data, close=True))  # keep-alive promised, then closed
    await transport.asend(get(server.url))
    await asyncio.sleep(0)  # let the close arrive, as it would while the connection idles
    reply = await transport.asend(get(server.url))
    assert reply.body == b"ok"
    assert server.connections == 2


async def test_a_connection_lost_mid_answer_is_connection_lost(
    server: RawHttpServer, transport: Http1Transport
) -> None:
    server.answers.append(Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", True))
    with pytest.raises(ConnectionLost, match="mid-answer"):
        await transport.asend(get(server.url))


async def test_an_answer_that_is_not_http(server: RawHttpServer, transport: Http1Transport) -> None:
    server.answers.append(Answer(b"SSH-2.0-OpenSSH\r\n\r\n"))
    with pytest.raises(ConnectionLost, match="not HTTP"):
        await transport.asend(get(server.url))


async def test_no_answer_within_the_read_timeout(server: RawHttpServer) -> None:
    server.answers.append(Answer(None))
    quick = Http1Transport(timeouts=PhaseTimeouts(read=0.2), trust_env=False)
    try:
        with pytest.raises(ReadTimeout):
            await quick.asend(get(server.url))
    finally:
        await quick.aclose()


async def test_the_calls_own_timeout_caps_every_phase(
    server: RawHttpServer, transport: Http1Transport
) -> None:
    server.answers.append(Answer(None))
    with pytest.raises(ReadTimeout):
        await transport.asend(Call("GET", server.url, timeout=0.2))


async def test_a_refused_connection_is_a_connect_error(transport: Http1Transport) -> None:
    with pytest.raises(ConnectError) as caught:
        await transport.asend(get(f"http://127.0.0.1:{free_port()}/"))
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


async def test_waiting_for_a_free_connection_is_bounded_by_the_pool_timeout(
    server: RawHttpServer,
) -> None:
    server.answers.append(Answer(None))  # the one connection stays busy
    tight = Http1Transport(
        limits=PoolLimits(max_connections=1),
        timeouts=PhaseTimeouts(read=30.0, pool=0.2),
        trust_env=False,
    )
    busy = asyncio.ensure_future(tight.asend(get(server.url)))
    for _ in range(500):  # until the busy request holds the one connection
        if server.requests:
            break
        await asyncio.sleep(0.01)
    try:
        with pytest.raises(ConnectTimeout, match="no free connection"):
            await tight.asend(get(server.url))
    finally:
        busy.cancel()
        await asyncio.gather(busy, return_exceptions=True)
        await tight.aclose()


@pytest.mark.parametrize(
    "limits", [PoolLimits(keepalive_expiry=0.0), PoolLimits(max_keepalive_connections=0)]
)
async def test_idle_connections_are_not_kept_beyond_the_limits(
    limits: PoolLimits, server: RawHttpServer
) -> None:
    transport = Http1Transport(limits=limits, trust_env=False)
    try:
        for _ in range(3):
            await transport.asend(get(server.url))
    finally:
        await transport.aclose()
    assert server.connections == 3


async def test_header_values_cannot_break_the_head(
    server: RawHttpServer, transport: Http1Transport
) -> None:
    call = Call("GET", server.url, (("x-evil", "a\r\nInjected: yes"),))
    with pytest.raises(ValidationError, match=r"headers\.x-evil"):
        await transport.asend(call)
    assert server.requests == []


async def test_redirects_are_followed_only_when_asked(
    server: RawHttpServer, transport: Http1Transport
) -> None:
    moved = Answer(b"HTTP/1.1 303 See Other\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n")
    server.answers.extend([moved, moved])
    assert (await transport.asend(get(f"{server.url}/start"))).status == 303
    post = Call("POST", f"{server.url}/start", (), b"data", options={"follow_redirects": True})
    assert (await transport.asend(post)).body == b"ok"
    assert server.requests[-1][0].startswith(b"GET /next HTTP/1.1")  # a 303 becomes a GET


async def test_an_http_proxy_from_the_environment_gets_the_absolute_url(
    server: RawHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = Http1Transport()
    try:
        await proxied.asend(get("http://inventory-service:8000/items"))
    finally:
        await proxied.aclose()
    head = server.requests[0][0]
    assert head.startswith(b"GET http://inventory-service:8000/items HTTP/1.1\r\n")
    assert b"Host: inventory-service:8000\r\n" in head


async def test_each_event_loop_gets_its_own_pool(server: RawHttpServer) -> None:
    transport = Http1Transport(trust_env=False)
    url = server.url

    def in_a_new_loop() -> int:
        return asyncio.run(transport.asend(get(url))).status

    statuses = [await asyncio.to_thread(in_a_new_loop) for _ in range(2)]
    assert statuses == [200, 200]
    assert (await transport.asend(get(url))).status == 200
    await transport.aclose()


# ---- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[int, Path]]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ok(b"secret").data or b"")
        await writer.drain()
        writer.close()

    running = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    yield running.sockets[0].getsockname()[1], cert
    running.close()
    await running.wait_closed()


async def test_https_checks_the_certificate(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    trusting = Http1Transport(verify=str(cert), trust_env=False)
    default = Http1Transport(trust_env=False)
    try:
        assert (await trusting.asend(get(f"https://localhost:{port}/"))).body == b"secret"
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await default.asend(get(f"https://localhost:{port}/"))
    finally:
        await trusting.aclose()
        await default.aclose()


async def test_https_through_a_proxy_tunnel(
    tls_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cert = tls_server
    proxy = TunnelProxy()
    await proxy.start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    tunnelled = Http1Transport(verify=str(cert))
    try:
        assert (await tunnelled.asend(get(f"https://localhost:{port}/"))).body == b"secret"
    finally:
        await tunnelled.aclose()
        await proxy.stop()
    assert proxy.tunnels == [f"localhost:{port}".encode()]
