"""The request body cap as ASGI middleware, for any of servicegrid's HTTP apps.

A body over the cap is refused with 413, whether its ``Content-Length`` says so or the streamed
bytes do; each app says what its refusal looks like, so the answer keeps that app's error format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "Refusal"]

Refusal = Callable[[str, int], ASGIApp]
"""The 413 answer for a request to a path (first argument) over a limit in bytes (second)."""


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """``refuse(path, limit)`` answers a request body over ``max_bytes``; others pass on.

    The body is read once, then replayed to the app. ``per_path`` gives other limits to paths
    starting with a prefix (document uploads).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        refuse: Refusal,
        per_path: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refuse = refuse
        self.per_path = dict(per_path or {})

    def _limit(self, path: str) -> int:
        for prefix, limit in self.per_path.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self.refuse(scope["path"], limit)(scope, receive, send)
                return
        try:
            messages = await self._read(receive, limit)
        except _TooLarge:
            await self.refuse(scope["path"], limit)(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive, limit: int) -> list[Message]:
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > limit:
                raise _TooLarge
            if not message.get("more_body", False):
                return messages
