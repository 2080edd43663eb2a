"""A raw HTTP/1.1 server on loopback that answers with exactly the bytes a test gives it.

Each accepted connection reads requests (head, and a body by ``Content-Length``)
and answers each with the next entry of ``answers``: bytes to send, optionally
followed by closing the connection, or ``None`` to send nothing and wait.
Requests seen are kept (``requests``: the raw head and body), as are the
connections opened (``connections``). Also a minimal ``CONNECT`` tunnel proxy.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Answer", "RawHttpServer", "TunnelProxy"]


@dataclass
class Answer:
    """What to send back: ``data`` (None: nothing, ever), then close when ``close``."""

    data: bytes | None
    close: bool = False


def ok(body: bytes = b"ok", *headers: str) -> Answer:
    head = "".join(f"{h}\r\n" for h in headers)
    return Answer(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), head.encode()) + body
    )


@dataclass
class RawHttpServer:
    answers: deque[Answer] = field(default_factory=deque)
    default: Callable[[bytes], Answer] = lambda head: ok()
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append((head, body))
                answer = self.answers.popleft() if self.answers else self.default(head)
                if answer.data is None:
                    await asyncio.Event().wait()  # never answer
                writer.write(answer.data)
                await writer.drain()
                if answer.close:
                    return
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class TunnelProxy:
    """Answers ``CONNECT host:port`` with 200 and then relays bytes both ways."""

    port: int = 0
    tunnels: list[bytes] = field(default_factory=list)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ")[1]
        self.tunnels.append(target)
        host, port = target.decode().rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
