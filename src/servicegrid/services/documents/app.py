"""Assemble the document processing service from settings, and run it as a process (:50054).

Engines, each in its own worker processes:
- ``text-layer``: the PDF's own text layer (pdfplumber, pypdfium2), and Tesseract's
  OCR for pages without one when it is installed; offline on CPU; the default.
- the VLM engine, when ``SERVICEGRID_VLM_URL`` names an OpenAI-compatible vision
  endpoint; requests reach it by its model name (``SERVICEGRID_VLM_MODEL``) or "vlm".
- ``docling``: Docling's DocumentConverter, when the ``docling`` package is installed
  (the ``docling`` extra, for GPU deployments).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from servicegrid.discovery.registration import announcer
from servicegrid.documents import TextLayerEngine
from servicegrid.documents.isolation import EngineFactory, IsolatedEngine
from servicegrid.documents.ocr import find_ocr
from servicegrid.proto import docling_vlm_service_pb2, docling_vlm_service_pb2_grpc
from servicegrid.runtime import RunningServer, serve
from servicegrid.services.assembly import bind
from servicegrid.services.documents.servicer import DocumentLimits, DocumentServicer
from servicegrid.settings import Settings

__all__ = ["DocumentsApp", "build_documents_service", "engine_factories", "run_documents_service"]

_log = logging.getLogger("servicegrid.services.documents")
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DocumentsApp:
    """A built, not yet started, document service: the server and its engines' workers."""

    running: RunningServer
    servicer: DocumentServicer

    async def aclose(self) -> None:
        """Stop every engine's workers (after the server has stopped)."""
        for engine in self.servicer.engines.values():
            await engine.aclose()


def engine_factories(settings: Settings) -> tuple[dict[str, EngineFactory], dict[str, str]]:
    """(engine name -> factory, alias -> engine name) for what settings configure."""
    max_bytes, max_pages = settings.documents_max_mb * _MIB, settings.documents_max_pages
    factories: dict[str, EngineFactory] = {
        TextLayerEngine.name: functools.partial(
            TextLayerEngine, max_bytes=max_bytes, max_pages=max_pages
        )
    }
    aliases: dict[str, str] = {}
    if settings.vlm_url is not None:
        from servicegrid.documents.vlm import VLMEngine

        name = f"vlm:{settings.vlm_model}"
        factories[name] = functools.partial(
            VLMEngine,
            base_url=settings.vlm_url,
            model=settings.vlm_model,
            api_key=settings.vlm_api_key,
            max_bytes=max_bytes,
            max_pages=max_pages,
        )
        aliases.update({settings.vlm_model: name, "vlm": name})
    if importlib.util.find_spec("docling") is not None:
        from servicegrid.documents.docling_engine import DoclingEngine

        factories[DoclingEngine.name] = functools.partial(
            DoclingEngine, max_bytes=max_bytes, max_pages=max_pages
        )
    return factories, aliases


def _announce_ocr() -> str:
    """The OCR program the text-layer engine will run, said in the log; "" when none."""
    ocr = find_ocr()
    if ocr is None:
        _log.warning(
            "OCR unavailable: pages without a text layer (scans) come back without text;"
            " install Tesseract (Debian: tesseract-ocr tesseract-ocr-eng; `make` does)"
        )
        return ""
    _log.info("OCR for pages without a text layer: %s", ocr.name)
    return ocr.name


async def build_documents_service(
    settings: Settings,
    *,
    address: str,
    registry: CollectorRegistry | None = None,
    factories: Mapping[str, EngineFactory] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> DocumentsApp:
    """Start every engine's workers, then bind the server (not yet started).

    ``factories``/``aliases`` replace what settings configure (tests pass their own).
    """
    if factories is None:
        factories, aliases = engine_factories(settings)
    default = (aliases or {}).get(settings.documents_engine, settings.documents_engine)
    if default not in factories:
        raise RuntimeError(
            f"SERVICEGRID_DOCUMENTS_ENGINE={settings.documents_engine!r} is not loaded;"
            f" loaded: {', '.join(sorted(factories))}"
        )
    engines: dict[str, IsolatedEngine] = {}
    try:
        for name, factory in factories.items():
            engine = IsolatedEngine(factory, workers=settings.documents_workers)
            engines[name] = engine
            await engine.start()
            _log.info("document engine %s: %d worker processes", name, engine.size)
        servicer = DocumentServicer(
            engines,
            default_engine=default,
            aliases=aliases,
            ocr=_announce_ocr(),
            limits=DocumentLimits(
                max_bytes=settings.documents_max_mb * _MIB,
                max_pages=settings.documents_max_pages,
                timeout=settings.documents_timeout,
                max_batch=settings.documents_max_batch,
            ),
        )
        running = await bind(
            address,
            docling_vlm_service_pb2.DESCRIPTOR.services_by_name["DoclingVLMService"],
            docling_vlm_service_pb2_grpc.add_DoclingVLMServiceServicer_to_server,
            servicer,
            settings,
            registry=registry,
        )
    except BaseException:
        for engine in engines.values():
            await engine.aclose()
        raise
    return DocumentsApp(running, servicer)


async def run_documents_service(settings: Settings, *, address: str) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls and stop the workers."""
    app = await build_documents_service(settings, address=address)
    try:
        await serve(
            app.running,
            grace=settings.shutdown_grace,
            announce=announcer(settings, "documents"),
        )
    finally:
        await app.aclose()
