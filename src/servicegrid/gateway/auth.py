"""API keys: ``Authorization: Bearer <key>`` on every path but the open ones.

With no key configured the gateway runs open (and says so at start and in its
status endpoint).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from servicegrid.gateway.errors import problem_response

__all__ = ["OPEN_PATHS", "ApiKeyMiddleware", "bearer_token"]

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", "/docs", "/openapi.json"})


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text: str = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _known(token: str, keys: tuple[bytes, ...]) -> bool:
    given = token.encode()
    # Compare with every key, so the time taken does not tell which prefix matched.
    matches = [hmac.compare_digest(given, key) for key in keys]
    return any(matches)


class ApiKeyMiddleware:
    """Answers 401 (in the path's error shape) without a configured key; open when none is."""

    def __init__(self, app: ASGIApp, *, keys: Iterable[str]) -> None:
        self.app = app
        self.keys = tuple(key.encode() for key in keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        if token is not None and _known(token, self.keys):
            await self.app(scope, receive, send)
            return
        message = (
            "Missing API key: send Authorization: Bearer <key>"
            if token is None
            else "Incorrect API key provided"
        )
        response = problem_response(scope["path"], 401, message, code="invalid_api_key")
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)
