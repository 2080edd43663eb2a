"""The documents routes and their job store, against a real in-process document service.

The app here is a test fixture: just the documents router, the state it reads and a
ServiceError handler, so these tests do not depend on the gateway's own ``create_app``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from fpdf import FPDF

from servicegrid.clients import DoclingVLMClient, ServiceClientConfig
from servicegrid.errors import ClientStateError, ResourceNotFoundError
from servicegrid.gateway.document_jobs import DocumentJobs, JobStatus, database_for
from servicegrid.gateway.errors import install_error_handlers
from servicegrid.gateway.routes.documents import documents_router
from servicegrid.services.documents.app import DocumentsApp, build_documents_service
from servicegrid.settings import Settings, load_settings
from servicegrid.testing import FakeClock
from tests.support.faulty_server import free_port
from tests.support.served import served

pytestmark = pytest.mark.asyncio(loop_scope="module")

TITLE = "Quarterly Widget Report"
ROWS = [["Item", "Count", "Price"], ["widget", "12", "3.50"], ["gadget", "7", "9.99"]]


def make_pdf() -> bytes:
    """One page: a large bold title and a ruled three-by-three table."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 24)
    pdf.set_xy(72, 72)
    pdf.cell(450, 30, TITLE)
    pdf.set_font("Helvetica", "", 11)
    pdf.set_xy(72, 130)
    pdf.cell(450, 14, "The table below counts the widgets sold this quarter.")
    for index, row in enumerate(ROWS):
        pdf.set_xy(72, 170 + index * 20)
        for text in row:
            pdf.cell(100, 20, text, border=1)
    return bytes(pdf.output())


PDF = make_pdf()


def build_app(
    settings: Settings, *, client: DoclingVLMClient | None, jobs: DocumentJobs
) -> FastAPI:
    """The documents router with the gateway's error handlers, and only the state it reads."""
    app = FastAPI()
    app.state.settings = settings
    app.state.clients = SimpleNamespace(documents=client)
    app.state.document_jobs = jobs
    app.include_router(documents_router())
    install_error_handlers(app)
    return app


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def service() -> AsyncIterator[DocumentsApp]:
    settings = load_settings(documents_workers=1, documents_timeout=20.0)
    async with served(build_documents_service, settings) as built:
        yield built


def client_at(address: str) -> DoclingVLMClient:
    config = ServiceClientConfig(service_url=address, retry_attempts=1, timeout=10.0)
    return DoclingVLMClient(config=config, registry=None)


@pytest_asyncio.fixture(loop_scope="module")
async def client(service: DocumentsApp) -> AsyncIterator[DoclingVLMClient]:
    async with client_at(f"127.0.0.1:{service.running.port}") as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="module")
async def dead_client() -> AsyncIterator[DoclingVLMClient]:
    """A client for a port nothing listens on: the document service is down."""
    async with client_at(f"127.0.0.1:{free_port()}") as opened:
        yield opened


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_start=time.time())


@pytest_asyncio.fixture(loop_scope="module")
async def jobs(tmp_path: Path, clock: FakeClock) -> AsyncIterator[DocumentJobs]:
    async with DocumentJobs(tmp_path / "jobs.db", ttl=60.0, clock=clock) as store:
        yield store


@pytest.fixture
def settings() -> Settings:
    return load_settings(documents_max_mb=1)


def http(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


def upload(data: bytes = PDF, name: str = "report.pdf") -> dict[str, Any]:
    return {"files": {"file": (name, data, "application/pdf")}}


async def poll(api: httpx.AsyncClient, url: str, *, deadline_s: float = 15.0) -> dict[str, Any]:
    """The job once it is no longer pending or running; fails the test past the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        answer = await api.get(url)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body["status"] not in ("pending", "running"):
            return body
        assert time.monotonic() < deadline, f"job still {body['status']} after {deadline_s} s"
        await asyncio.sleep(0.02)


def assert_title_and_table(result: dict[str, Any]) -> None:
    assert result["result"]["document"]["title"] == TITLE
    assert result["result"]["metadata"]["filename"] == "report.pdf"
    assert isinstance(result["result"]["metadata"]["processing_time_ms"], int)
    (table,) = result["result"]["tables"]
    cells = [[cell["text"] for cell in row["cells"]] for row in table["rows"]]
    assert cells == ROWS
    assert table["page_number"] == 1


# ---- the routes ----------------------------------------------------------------------


async def test_a_sync_upload_answers_the_title_and_the_table(
    settings: Settings, client: DoclingVLMClient, jobs: DocumentJobs
) -> None:
    async with http(build_app(settings, client=client, jobs=jobs)) as api:
        answer = await api.post("/v1/documents", **upload())
    assert answer.status_code == 200, answer.text
    assert_title_and_table(answer.json())


async def test_form_fields_reach_the_service(
    settings: Settings, client: DoclingVLMClient, jobs: DocumentJobs
) -> None:
    form = {"extract_tables": "false", "extract_text_blocks": "false", "first_page": "1"}
    async with http(build_app(settings, client=client, jobs=jobs)) as api:
        answer = await api.post("/v1/documents", data=form, **upload())
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["document"]["title"] == TITLE
    assert result["tables"] == []
    assert result["text_blocks"] == []


async def test_an_async_upload_is_a_job_with_the_same_result(
    settings: Settings, client: DoclingVLMClient, jobs: DocumentJobs
) -> None:
    async with http(build_app(settings, client=client, jobs=jobs)) as api:
        accepted = await api.post("/v1/documents", params={"async": "true"}, **upload())
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert body["status"] == "pending"
        assert body["poll"] == f"/v1/documents/{body['id']}"
        assert accepted.headers["location"] == body["poll"]
        done = await poll(api, body["poll"])
    assert done["status"] == "succeeded", done
    assert done["id"] == body["id"]
    assert done["filename"] == "report.pdf"
    assert done["created_at"].endswith("Z")
    assert "error" not in done
    assert_title_and_table(done["result"])


@pytest.mark.parametrize(
    ("request_kwargs", "says"),
    [
        pytest.param(upload(b"hello, not a pdf", "notes.pdf"), "not a PDF", id="not-a-pdf"),
        pytest.param(upload(b""), "empty", id="empty"),
        pytest.param({"data": {"extract_tables": "true"}}, "required", id="no-file-field"),
        pytest.param({"json": {"file": "x"}}, "required", id="json-body"),
    ],
)
async def test_bad_uploads_are_refused_naming_the_file(
    settings: Settings,
    client: DoclingVLMClient,
    jobs: DocumentJobs,
    request_kwargs: dict[str, Any],
    says: str,
) -> None:
    async with http(build_app(settings, client=client, jobs=jobs)) as api:
        for params in ({}, {"async": "true"}):
            answer = await api.post("/v1/documents", params=params, **request_kwargs)
            assert answer.status_code == 422, answer.text
            error = answer.json()["error"]
            assert error["param"] == "file"
            assert says in error["message"]
    assert await jobs.purge_expired() == 0


async def test_a_bad_page_number_names_its_field(
    settings: Settings, client: DoclingVLMClient, jobs: DocumentJobs
) -> None:
    async with http(build_app(settings, client=client, jobs=jobs)) as api:
        answer = await api.post("/v1/documents", data={"first_page": "0"}, **upload())
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "first_page"


async def test_no_document_service_configured_is_503(
    settings: Settings, jobs: DocumentJobs
) -> None:
    async with http(build_app(settings, client=None, jobs=jobs)) as api:
        for params in ({}, {"async": "true"}):
            answer = await api.post("/v1/documents", params=params, **upload())
            assert answer.status_code == 503
            assert "DOCLING_VLM_SERVICE_URL" in answer.json()["error"]["message"]


async def test_a_stopped_document_service_is_503_or_a_failed_job(
    settings: Settings, dead_client: DoclingVLMClient, jobs: DocumentJobs
) -> None:
    async with http(build_app(settings, client=dead_client, jobs=jobs)) as api:
        answer = await api.post("/v1/documents", **upload())
        assert answer.status_code == 503, answer.text
        accepted = await api.post("/v1/documents", params={"async": "true"}, **upload())
        assert accepted.status_code == 202
        done = await poll(api, accepted.json()["poll"])
    assert done["status"] == "failed"
    assert "result" not in done
    assert done["error"]["http_status"] == 503
    assert done["error"]["message"]


async def test_unknown_and_expired_jobs_are_404(
    settings: Settings, client: DoclingVLMClient, jobs: DocumentJobs, clock: FakeClock
) -> None:
    async with http(build_app(settings, client=client, jobs=jobs)) as api:
        assert (await api.get("/v1/documents/no-such-job")).status_code == 404
        job = await jobs.create("old.pdf")
        assert (await api.get(f"/v1/documents/{job.id}")).json()["status"] == "pending"
        clock.advance(60.0)
        answer = await api.get(f"/v1/documents/{job.id}")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "resource_not_found_error"
    assert await jobs.purge_expired() == 1


# ---- the store -----------------------------------------------------------------------


async def test_a_second_store_on_the_same_file_sees_the_job(
    tmp_path: Path, jobs: DocumentJobs, clock: FakeClock
) -> None:
    job = await jobs.create("shared.pdf")
    async with DocumentJobs(tmp_path / "jobs.db", ttl=60.0, clock=clock) as other:
        assert (await other.get(job.id)).status is JobStatus.PENDING
        await other.mark_running(job.id)
        await other.finish(job.id, {"pages": 3})
    seen = await jobs.get(job.id)
    assert seen.status is JobStatus.SUCCEEDED
    assert seen.result == {"pages": 3}
    assert seen.error is None


async def test_expired_jobs_are_deleted_on_create(jobs: DocumentJobs, clock: FakeClock) -> None:
    old = await jobs.create("old.pdf")
    clock.advance(30.0)
    young = await jobs.create("young.pdf")
    clock.advance(30.0)
    await jobs.create("new.pdf")  # purges `old`, now exactly one TTL old
    with pytest.raises(ResourceNotFoundError):
        await jobs.get(old.id)
    assert (await jobs.get(young.id)).filename == "young.pdf"
    assert await jobs.purge_expired() == 0


async def test_aclose_cancels_running_jobs_and_fails_them(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    started = asyncio.Event()

    async def forever() -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with DocumentJobs(path) as store:
        job = await store.submit("slow.pdf", forever)
        await asyncio.wait_for(started.wait(), 5.0)
    with pytest.raises(ClientStateError):
        await store.get(job.id)
    async with DocumentJobs(path) as reopened:
        failed = await reopened.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error["http_status"] == 503


async def test_a_foreign_error_is_stored_without_its_details(jobs: DocumentJobs) -> None:
    async def broken() -> dict[str, Any]:
        raise KeyError("secret internals")

    job = await jobs.submit("broken.pdf", broken)
    deadline = time.monotonic() + 5.0
    while (current := await jobs.get(job.id)).status is not JobStatus.FAILED:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert current.error == {
        "message": "internal error",
        "type": "InternalError",
        "http_status": 500,
    }


async def test_the_store_on_postgresql(postgres_url: str) -> None:
    url = database_for(postgres_url)
    async with DocumentJobs(url) as one, DocumentJobs(url) as two:
        job = await one.create("pg.pdf")
        await two.fail(job.id, ResourceNotFoundError("gone"))
        seen = await one.get(job.id)
        assert seen.status is JobStatus.FAILED
        assert seen.error == {
            "message": "gone",
            "type": "ResourceNotFoundError",
            "http_status": 404,
        }
        with pytest.raises(ResourceNotFoundError):
            await two.get("missing")


async def test_the_database_comes_from_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert DocumentJobs.from_settings(load_settings()).database == str(
        Path(".servicegrid/document_jobs.db")
    )
    assert database_for("sqlite:////srv/data/integration.db") == "/srv/data/document_jobs.db"
    assert database_for("sqlite+aiosqlite:///:memory:") == ":memory:"
    assert database_for("postgresql+asyncpg://u:p@db:5432/sg") == "postgresql://u:p@db:5432/sg"
    with pytest.raises(ValueError, match="mysql"):
        database_for("mysql://db/sg")


async def test_a_pdf_over_the_limit_is_413_naming_the_file(
    settings: Settings, client: DoclingVLMClient, jobs: DocumentJobs
) -> None:
    too_big = upload(b"%PDF-1.7\n" + b"0" * (1024 * 1024))
    async with http(build_app(settings, client=client, jobs=jobs)) as api:
        for params in ({}, {"async": "true"}):
            answer = await api.post("/v1/documents", params=params, **too_big)
            assert answer.status_code == 413, answer.text
            error = answer.json()["error"]
            assert error["param"] == "file"
            assert "MAX_MB" in error["message"]
