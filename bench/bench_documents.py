"""The document service (text-layer engine) vs the same engine in-process vs plain pdfplumber.

The service runs as its own process (``servicegrid serve documents``, two worker
processes); the client and the in-process baselines run here, on the same cores.
Figures are pages per second, medians of interleaved rounds.

    .venv/bin/python bench/bench_documents.py
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pdfplumber  # noqa: E402
from fpdf import FPDF  # noqa: E402
from tests.services.test_service_processes import wait_serving  # noqa: E402
from tests.support.faulty_server import free_port  # noqa: E402

from _common import logged_process, table  # noqa: E402
from servicegrid.clients import DoclingVLMClient, ServiceClientConfig  # noqa: E402
from servicegrid.documents import ExtractOptions, TextLayerEngine  # noqa: E402

PAGES = 10
DOCUMENTS = 8
ROUNDS = 3
CALLERS = 4


def document(tag: int) -> bytes:
    """A PDF of PAGES pages: a heading, paragraphs and a ruled table on each."""
    pdf = FPDF(unit="pt", format="letter")
    pdf.set_auto_page_break(False)
    for page in range(1, PAGES + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.text(72, 90, f"Section {page} of document {tag}")
        pdf.set_font("Helvetica", "", 11)
        y = 120.0
        for line in range(18):
            pdf.text(
                72, y, f"Line {line} of page {page}: metformin lowers glucose in type 2 diabetes."
            )
            y += 14
        pdf.set_xy(72, y + 20)
        for row in range(4):
            for col in range(3):
                pdf.cell(120, 18, f"r{row} c{col}", border=1)
            pdf.ln(18)
            pdf.set_x(72)
    return bytes(pdf.output())


def in_process(engine: TextLayerEngine, docs: list[bytes]) -> float:
    started = time.perf_counter()
    for data in docs:
        engine.process(data, filename="doc.pdf", options=ExtractOptions())
    return len(docs) * PAGES / (time.perf_counter() - started)


def plain_pdfplumber(docs: list[bytes]) -> float:
    started = time.perf_counter()
    for data in docs:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for page in pdf.pages:
                page.extract_text()
    return len(docs) * PAGES / (time.perf_counter() - started)


async def through_service(client: DoclingVLMClient, docs: list[bytes]) -> float:
    pending = list(docs)

    async def caller() -> None:
        while pending:
            await client.process_pdf(pending.pop(), "doc.pdf")

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return len(docs) * PAGES / (time.perf_counter() - started)


async def measure(port: int, docs: list[bytes]) -> dict[str, list[float]]:
    engine = TextLayerEngine()
    runs: dict[str, list[float]] = {"engine": [], "service": [], "pdfplumber": []}
    config = ServiceClientConfig(service_url=f"127.0.0.1:{port}", timeout=300.0)
    async with DoclingVLMClient(config=config, registry=None) as client:
        await through_service(client, docs[:2])  # warm-up
        for _ in range(ROUNDS):
            runs["engine"].append(in_process(engine, docs))
            runs["service"].append(await through_service(client, docs))
            runs["pdfplumber"].append(plain_pdfplumber(docs))
    return runs


def main() -> list[list[object]]:
    docs = [document(i) for i in range(DOCUMENTS)]
    port = free_port()
    with logged_process(
        [sys.executable, "-m", "servicegrid.cli", "serve", "documents", "--port", str(port)],
        {**os.environ, "SERVICEGRID_LOG_LEVEL": "WARNING"},
        "service",
        prefix="bench-documents",
    ):
        asyncio.run(wait_serving(port, within=120.0))
        runs = asyncio.run(measure(port, docs))
    engine = statistics.median(runs["engine"])
    ratio = statistics.median(s / e for s, e in zip(runs["service"], runs["engine"], strict=True))
    rows: list[list[object]] = [
        ["text-layer engine in-process, one at a time (baseline)", f"{engine:.1f}", "1.00", ""],
        [
            f"service, {CALLERS} concurrent callers, 2 worker processes",
            f"{statistics.median(runs['service']):.1f}",
            f"{ratio:.2f}",
            ">= 0.9",
        ],
        [
            "plain pdfplumber extract_text (text only, no structure)",
            f"{statistics.median(runs['pdfplumber']):.1f}",
            f"{statistics.median(runs['pdfplumber']) / engine:.2f}",
            "",
        ],
    ]
    print(table(["pages/s (10-page PDFs, CPU)", "pages/s", "vs in-process engine", "goal"], rows))
    return rows


if __name__ == "__main__":
    main()
