"""The sample action services ``make up`` runs for seed 003's example, on real uvicorn servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error

from servicegrid.apps.sample_actions import SAMPLE_SERVICES, create_sample_app
from tests.support.schema_fuzz import fuzz_settings
from tests.support.threaded_server import ThreadedServer

EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    servers = {name: ThreadedServer(create_sample_app(name), name=name) for name in SAMPLE_SERVICES}
    for server in servers.values():
        server.__enter__()
    try:
        yield {name: server.url for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)


def test_each_action_answers_from_its_input(urls: dict[str, str]) -> None:
    url = "https://example.com/document.pdf"
    extracted = httpx.post(f"{urls['text-extraction']}/api/extract", json={"document_url": url})
    assert extracted.status_code == 200, extracted.text
    text = extracted.json()["text"]
    assert url in text
    assert extracted.json()["metadata"] == {"pages": 1, "source": url}

    analyzed = httpx.post(f"{urls['sentiment-analysis']}/api/analyze", json={"text": text})
    assert analyzed.json() == {"sentiment": "positive", "score": 1.0}
    bad = httpx.post(f"{urls['sentiment-analysis']}/api/analyze", json={"text": "bad and slow"})
    assert bad.json() == {"sentiment": "negative", "score": -1.0}
    mixed = httpx.post(f"{urls['sentiment-analysis']}/api/analyze", json={"text": "good, bad"})
    assert mixed.json() == {"sentiment": "neutral", "score": 0.0}

    summary = httpx.post(
        f"{urls['text-summarization']}/api/summarize",
        json={"text": "First sentence here. Second one.", "max_length": 5},
    )
    assert summary.json() == {"summary": "First"}
    for name, url in urls.items():
        for path in ("/health", "/api/health"):
            assert httpx.get(f"{url}{path}").json() == {"status": "healthy", "service": name}


def test_a_repeated_idempotency_key_gets_the_first_answer(urls: dict[str, str]) -> None:
    endpoint = f"{urls['sentiment-analysis']}/api/analyze"
    headers = {"Idempotency-Key": "run-1:analyze"}
    first = httpx.post(endpoint, json={"text": "great"}, headers=headers)
    again = httpx.post(endpoint, json={"text": "terrible"}, headers=headers)
    assert first.json() == again.json() == {"sentiment": "positive", "score": 1.0}


@pytest.mark.parametrize(
    ("service", "path", "body", "loc"),
    [
        ("text-extraction", "/api/extract", {}, ["body", "document_url"]),
        ("text-extraction", "/api/extract", {"document_url": ""}, ["body", "document_url"]),
        ("sentiment-analysis", "/api/analyze", {"text": 3}, ["body", "text"]),
        ("sentiment-analysis", "/api/analyze", {"text": None}, ["body", "text"]),
        ("text-summarization", "/api/summarize", {"text": "x", "max_length": 0}, None),
    ],
)
def test_bad_input_is_422_naming_the_field(
    urls: dict[str, str], service: str, path: str, body: dict[str, object], loc: list[str] | None
) -> None:
    response = httpx.post(f"{urls[service]}{path}", json=body)
    assert response.status_code == 422, response.text
    expected = loc or ["body", "max_length"]
    assert [error["loc"] for error in response.json()["detail"]] == [expected]


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as opened:
        yield opened


def _no_server_error(name: str) -> Callable[..., None]:
    """A schemathesis test of the sample service ``name``: no generated request gets a 5xx."""
    schema = schemathesis.openapi.from_dict(create_sample_app(name).openapi())

    @schema.parametrize()
    @fuzz_settings(EXAMPLES_PER_OPERATION)
    def test(
        case: schemathesis.Case,  # type: ignore[type-arg]
        urls: dict[str, str],
        session: requests.Session,
    ) -> None:
        response = case.call(base_url=urls[name], session=session, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])

    return test


test_text_extraction_fuzzed = _no_server_error("text-extraction")
test_sentiment_analysis_fuzzed = _no_server_error("sentiment-analysis")
test_text_summarization_fuzzed = _no_server_error("text-summarization")
