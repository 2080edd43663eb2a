"""Schemathesis against the gateway's OpenAPI: no generated request gets a 5xx.

The gateway runs on a real uvicorn server over the real model services; only
this slice's operations are fuzzed (chat and documents have their own tests).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error

from servicegrid.gateway import create_app
from servicegrid.settings import load_settings
from tests.gateway.conftest import AppMaker
from tests.support.schema_fuzz import fuzz_settings
from tests.support.threaded_server import ThreadedServer

PATHS = [
    "/health",
    "/ready",
    "/metrics",
    "/v1/models",
    "/v1/embeddings",
    "/v1/rerank",
    "/embed",
    "/rerank",
    "/v1/api/status/services",
]
EXAMPLES_PER_OPERATION = 50

schema = schemathesis.openapi.from_dict(create_app(load_settings()).openapi()).include(path=PATHS)


@pytest.fixture(scope="module")
def gateway_url(make_app_for_module: AppMaker) -> Iterator[str]:
    with ThreadedServer(make_app_for_module(), name="gateway") as server:
        yield server.url


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as opened:
        yield opened


@schema.parametrize()
@fuzz_settings(EXAMPLES_PER_OPERATION)
def test_no_request_gets_a_server_error(
    case: schemathesis.Case,  # type: ignore[type-arg]
    gateway_url: str,
    session: requests.Session,
) -> None:
    response = case.call(base_url=gateway_url, session=session, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
