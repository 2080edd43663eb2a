"""Every file in examples/ runs, as a user would run it, against a real local server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.support.faulty_server import FaultyServer, free_port
from tests.support.integration_process import IntegrationProcess
from tests.support.service_processes import serve, wait_for_health

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def run_example(name: str, server_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CHROMA_SERVER_URL": server_url,
        "FILESYSTEM_SERVER_URL": server_url,
        "MY_SERVICE_URL": server_url,
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES} == {
        "seed000_docling_client.py",
        "seed000_embedding_client.py",
        "seed000_gpu_client.py",
        "seed000_reranking_client.py",
        "seed001_quick_start.py",
        "seed001_patterns.py",
        "seed001_status_endpoint.py",
        "seed002_service_discovery.py",  # run by tests/discovery/test_example.py
        "seed002_orchestrator.py",  # run by tests/retrieval/test_processes.py
        "seed002_service_integration.py",  # run by tests/apps/test_processes.py
        "seed003_integration_client.py",
        "seed004_enhanced_http_client.py",
        "seed004_distributed_llm_client.py",  # run by tests/llm/test_example.py
        "seed004_local_embeddings.py",
        "seed004_production_embedding_service.py",
        "seed004_production_llm_service.py",
    }


def test_quick_start_against_a_healthy_service(server: FaultyServer) -> None:
    done = run_example("seed001_quick_start.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "search: {'ok': True, 'path': '/query', 'method': 'POST'" in done.stdout
    assert "'state': 'closed'" in done.stdout
    assert "[Chroma Server] ✓ POST /query succeeded" in done.stderr


def test_quick_start_when_the_service_is_down(server: FaultyServer) -> None:
    server.set(mode="fail", status=503, retry_after=None)
    done = run_example("seed001_quick_start.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "search: ({'error': 'Service unavailable'}, 503)" in done.stdout
    assert "[Chroma Server] HTTP 503 on attempt 1/3, retrying in 1s..." in done.stderr
    assert "Search failed:" in done.stderr


def test_patterns(server: FaultyServer) -> None:
    done = run_example("seed001_patterns.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "fail closed: ({'charged': True}, 200)" in done.stdout
    assert "best effort: continued" in done.stdout
    assert "presets: ((3, 15.0), (2, 5.0), (3, 30.0, 90.0))" in done.stdout


@pytest.mark.parametrize("mode", ["ok", "fail"])
def test_status_endpoint(server: FaultyServer, mode: str) -> None:
    server.set(mode=mode)
    done = run_example("seed001_status_endpoint.py", server.url, "--check")
    assert done.returncode == 0, done.stderr
    assert "flask: {'chroma': {" in done.stdout
    assert "'service': 'Chroma Server'" in done.stdout
    assert "fastapi: {'Chroma Server': {" in done.stdout


def test_enhanced_http_client(server: FaultyServer) -> None:
    done = run_example("seed004_enhanced_http_client.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "response: 200 {'ok': True, 'path': '/api/endpoint'" in done.stdout
    assert "Error rate: 0.0" in done.stdout
    assert "Circuit breaker: closed" in done.stdout


def test_production_embedding_service_with_the_packaged_minilm() -> None:
    pytest.importorskip("torch", reason="the models extra (torch) is not installed")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "seed004_production_embedding_service.py")],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Dimension: 384\nCached: False\n" in done.stdout
    similarity = float(done.stdout.split("Similarity: ")[1].split()[0])
    assert 0.5 < similarity <= 1.0
    assert "Cache hit rate: 0.0\n" in done.stdout  # every text differs


def test_production_llm_service_against_an_openai_compatible_standin() -> None:
    """The LLM host is a local OpenAI-compatible stand-in, named in SERVICEGRID_LLM_URLS."""
    from tests.support.llm_hosts import LLMHostStandIn

    with LLMHostStandIn("standin") as host:
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "seed004_production_llm_service.py")],
            env={**os.environ, "SERVICEGRID_LLM_URLS": host.url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        served = host.served
    assert done.returncode == 0, done.stderr
    assert "Generations: 1\nTokens used: 6\n" in done.stdout
    assert served == 1


def test_local_embeddings_with_the_packaged_minilm(tmp_path: Path) -> None:
    """The seed's device is "cuda": SERVICEGRID_DEVICE=cpu runs it on a machine without one."""
    pytest.importorskip("torch", reason="the models extra (torch) is not installed")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "seed004_local_embeddings.py")],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "SERVICEGRID_DEVICE": "cpu"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Dimension: 384\nembeddings: (3, 384) float32 on cpu\n" in done.stdout


async def run_example_async(
    name: str, *, cwd: Path | None = None, **env: str
) -> tuple[int, str, str]:
    """Run an example while this test's event loop keeps serving an in-process gRPC service."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / name),
        cwd=cwd,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    return int(process.returncode or 0), stdout.decode(), stderr.decode()


async def test_gpu_client_against_the_gpu_service_on_the_nvml_standin(tmp_path: Path) -> None:
    from servicegrid.gpu import NvmlStandIn
    from servicegrid.services.gpu.app import build_gpu_service
    from servicegrid.settings import load_settings

    app = await build_gpu_service(
        load_settings(gpu_lease_db=str(tmp_path / "leases.sqlite3")),
        address="127.0.0.1:0",
        registry=CollectorRegistry(),
        library=NvmlStandIn(),
    )
    await app.running.server.start()
    try:
        code, stdout, stderr = await run_example_async(
            "seed000_gpu_client.py", GPU_SERVICE_URL=f"127.0.0.1:{app.running.port}"
        )
    finally:
        await app.running.server.stop(1.0)
        await app.aclose()
    assert code == 0, stderr
    assert "Available GPUs: 2" in stdout
    assert "GPU 0: 0/24576 MB" in stdout
    assert "Device 1: GPU 1 (NVML stand-in) (24576 MB)" in stdout
    assert "Allocation ID: " in stdout
    assert "Deallocation successful: True" in stdout


async def test_embedding_client_against_the_embedding_service() -> None:
    from servicegrid.services.embedding.app import build_embedding_service
    from servicegrid.settings import load_settings

    app = await build_embedding_service(
        load_settings(device="cpu"), address="127.0.0.1:0", registry=CollectorRegistry()
    )
    await app.running.server.start()
    try:
        code, stdout, stderr = await run_example_async(
            "seed000_embedding_client.py", EMBEDDING_SERVICE_URL=f"127.0.0.1:{app.running.port}"
        )
    finally:
        await app.running.server.stop(1.0)
        await app.aclose()
    assert code == 0, stderr
    assert "Generated 2 embeddings" in stdout
    assert "Embedding 0: dimension=384, norm=1.0" in stdout
    assert "Batch processing completed: 2 responses" in stdout
    assert (
        "Model: sentence-transformers/all-MiniLM-L6-v2, Dimension: 384, Available: True" in stdout
    )


async def test_reranking_client_against_the_reranking_service(tmp_path: Path) -> None:
    """The seed asks for cross-encoder/ms-marco-MiniLM-L-6-v2, whose weights cannot be
    downloaded here: a tiny cross-encoder built locally is served under that name."""
    from servicegrid.services.reranking.app import build_reranking_service
    from servicegrid.settings import load_settings
    from tests.support.tiny_models import build_tiny_cross_encoder

    stand_in = build_tiny_cross_encoder(tmp_path / "ms-marco-stand-in")
    settings = load_settings(
        device="cpu", reranking_models={"cross-encoder/ms-marco-MiniLM-L-6-v2": str(stand_in)}
    )
    app = await build_reranking_service(
        settings, address="127.0.0.1:0", registry=CollectorRegistry()
    )
    await app.running.server.start()
    try:
        code, stdout, stderr = await run_example_async(
            "seed000_reranking_client.py", RERANKING_SERVICE_URL=f"127.0.0.1:{app.running.port}"
        )
    finally:
        await app.running.server.stop(1.0)
        await app.aclose()
    assert code == 0, stderr
    assert "Reranking completed for 3 documents" in stdout
    assert "Text: Metformin is commonly used" in stdout or "Text: Insulin" in stdout
    assert "Multiple batch reranking completed: 2 responses" in stdout
    assert "Model: cross-encoder/ms-marco-MiniLM-L-6-v2, Max Length: " in stdout


PAGE_DOCTAGS = (
    "<doctag><title><loc_50><loc_30><loc_450><loc_50>A Study of Metformin</title>"
    "<section_header_level_1><loc_50><loc_60><loc_450><loc_75>1 Introduction"
    "</section_header_level_1>"
    "<text><loc_50><loc_80><loc_450><loc_120>Metformin lowers glucose.</text>"
    "<otsl><loc_50><loc_130><loc_450><loc_200><ched>Drug<ched>Dose<nl>"
    "<fcel>Metformin<fcel>500 mg<nl>"
    "<caption><loc_50><loc_205><loc_450><loc_215>Table 1: Doses</caption></otsl>"
    "<picture><loc_50><loc_220><loc_250><loc_320>"
    "<caption><loc_50><loc_325><loc_250><loc_335>Figure 1: Glucose over time</caption>"
    "</picture></doctag>"
)


async def test_docling_client_against_the_document_service_with_a_vlm_stand_in(
    tmp_path: Path,
) -> None:
    """The seed asks for gemma3-12b: the VLM engine talks to a local OpenAI-compatible
    stand-in for that remote vision model, which answers every page with PAGE_DOCTAGS."""
    from fpdf import FPDF

    from servicegrid.services.documents.app import build_documents_service
    from servicegrid.settings import load_settings
    from tests.support.openai_standin import OpenAIStandIn, Reply

    for name in ("document.pdf", "doc1.pdf", "doc2.pdf", "doc3.pdf"):
        pdf = FPDF(unit="pt", format="letter")
        pdf.set_font("Helvetica", "", 12)
        for page in (1, 2):
            pdf.add_page()
            pdf.text(72, 72, f"{name}, page {page}")
        (tmp_path / name).write_bytes(bytes(pdf.output()))
    with OpenAIStandIn(model="gemma3-12b", reply=Reply(PAGE_DOCTAGS)) as vlm:
        settings = load_settings(vlm_url=vlm.base_url, vlm_model="gemma3-12b", documents_workers=1)
        app = await build_documents_service(
            settings, address="127.0.0.1:0", registry=CollectorRegistry()
        )
        await app.running.server.start()
        try:
            code, stdout, stderr = await run_example_async(
                "seed000_docling_client.py",
                cwd=tmp_path,
                DOCLING_VLM_SERVICE_URL=f"127.0.0.1:{app.running.port}",
            )
        finally:
            await app.running.server.stop(1.0)
            await app.aclose()
        assert len(vlm.requests) == 2 + 3 * 2  # one request per page
    assert code == 0, stderr
    assert "Document processed: document.pdf" in stdout
    assert "Pages: 2" in stdout
    assert "Table on page 1: Table 1: Doses" in stdout
    assert "  Metformin | 500 mg" in stdout
    assert "Figure on page 1: Figure 1: Glucose over time" in stdout
    assert "Text block (title): A Study of Metformin..." in stdout
    assert "Batch processing completed: 3 responses" in stdout
    assert "PDF 3: doc3.pdf - 2 pages" in stdout


def test_seed003_example_runs_twice_against_the_sample_services(tmp_path: Path) -> None:
    """As under ``make up``: the integration service and the sample action services run as
    processes, and the seed's endpoints (``text-extraction-service:8000``) are found through
    discovery (their ``*_SERVICE_URL``). The example runs twice: the second run finds the
    services and the workflow it registered already (200), and gets the same answer."""
    ports = {name: free_port() for name in ("text-extraction", "sentiment-analysis")}
    urls = {
        f"{name.upper().replace('-', '_')}_SERVICE_URL": f"http://127.0.0.1:{port}"
        for name, port in ports.items()
    }
    samples = [serve(name, port) for name, port in ports.items()]
    service = IntegrationProcess(
        f"sqlite:///{tmp_path}/integration.db", tmp_path / "integration.log", env=urls
    )
    runs = []
    try:
        for url in urls.values():
            wait_for_health(f"{url}/health")
        service.start()
        for _ in range(2):
            runs.append(
                subprocess.run(
                    [sys.executable, str(ROOT / "examples" / "seed003_integration_client.py")],
                    env={**os.environ, "INTEGRATION_SERVICE_URL": service.api},
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
            )
    finally:
        service.stop()
        for process in samples:
            process.terminate()
            process.wait(timeout=20)
    for done in runs:
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "Registered text extraction service with ID: " in done.stdout
        assert "Created workflow with ID: " in done.stdout
        assert "Sentiment: positive\nScore: 1.0" in done.stdout, done.stdout


def test_seed003_example_exits_non_zero_without_a_result(tmp_path: Path) -> None:
    """The seed's function prints what went wrong and returns nothing; the script says so."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "seed003_integration_client.py")],
        env={**os.environ, "INTEGRATION_SERVICE_URL": f"http://127.0.0.1:{free_port()}/api"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
