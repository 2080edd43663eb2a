"""``RequestsTransport``: HTTP from threads through requests (seed 001's client).

Each call goes through ``requests.request``, looked up at call time so that
``unittest.mock.patch("requests.request")`` works as seed 001's tests expect,
or through ``session.request`` when a ``requests.Session`` is given for
connection reuse. ``call.options`` carries requests' own keyword arguments
(``json=``, ``params=``, ``files=``, ...), which requests encodes itself.
"""

from __future__ import annotations

from typing import Any

import requests

from servicegrid.transports.base import Call, Reply
from servicegrid.transports.http import map_requests_errors

__all__ = ["RequestsTransport"]


class RequestsTransport:
    """A :class:`~servicegrid.transports.base.Transport` on requests; ``service`` names errors."""

    def __init__(
        self, session: requests.Session | None = None, *, service: str | None = None
    ) -> None:
        self.session = session
        self.service = service

    def send(self, call: Call) -> Reply:
        send = self.session.request if self.session is not None else requests.request
        options: dict[str, Any] = dict(call.options)
        if call.headers:
            options["headers"] = dict(call.headers)
        if call.body is not None:
            options["data"] = call.body
        options.setdefault("timeout", call.timeout)
        with map_requests_errors(self.service, call.describe()):
            response = send(call.method, call.url, **options)
        # the body stays in the response until someone reads it (a mock's may not be bytes)
        return Reply(response.status_code, response.headers, None, response)

    def close(self) -> None:
        """Close the session, if one was given."""
        if self.session is not None:
            self.session.close()

    def __repr__(self) -> str:
        return f"RequestsTransport(session={self.session!r})"
