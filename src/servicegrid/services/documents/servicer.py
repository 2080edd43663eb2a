"""The DoclingVLMService servicer: PDFs through isolated engines (seed 000).

Each request is checked before any work: INVALID_ARGUMENT names the field
(``pdf_content``, ``config.timeout_seconds``, ``requests[2].config.last_page``);
an engine that is not loaded here is FAILED_PRECONDITION. The engine runs in a
worker process (:class:`~servicegrid.documents.isolation.IsolatedEngine`), so a
hostile PDF can cost a worker, never the service. A request without a config
gets tables, figures and text blocks; with one, its flags are honoured.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from servicegrid import __version__
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.documents import ExtractOptions
from servicegrid.documents.isolation import IsolatedEngine
from servicegrid.errors import DeadlineExceeded, FailedPrecondition
from servicegrid.proto import common_pb2, docling_vlm_service_pb2, docling_vlm_service_pb2_grpc
from servicegrid.resilience.deadline import remaining
from servicegrid.services.reporting import processing_metadata
from servicegrid.services.stats import ServiceStats
from servicegrid.services.validation import invalid

__all__ = ["DocumentLimits", "DocumentServicer"]

_pb = docling_vlm_service_pb2


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """What one request may ask for; ``timeout`` is the default per-document time limit."""

    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 500
    timeout: float = 120.0
    max_batch: int = 32


@dataclass(frozen=True, slots=True)
class _Checked:
    engine: IsolatedEngine
    engine_name: str
    options: ExtractOptions
    time_limit: float


class DocumentServicer(docling_vlm_service_pb2_grpc.DoclingVLMServiceServicer):
    """Serves every loaded engine; ``aliases`` map other model names (a VLM's) to an engine."""

    def __init__(
        self,
        engines: Mapping[str, IsolatedEngine],
        *,
        default_engine: str,
        aliases: Mapping[str, str] | None = None,
        limits: DocumentLimits = DocumentLimits(),
        clock: Clock = SYSTEM_CLOCK,
        ocr: str = "",
    ) -> None:
        """``ocr``: the OCR program the text-layer engine runs for scanned pages ("" none)."""
        if default_engine not in engines:
            raise ValueError(f"default engine {default_engine!r} is not among {sorted(engines)}")
        self.engines = dict(engines)
        self.default_engine = default_engine
        self.aliases = dict(aliases or {})
        self.limits = limits
        self.ocr = ocr
        self.stats = ServiceStats(clock=clock)
        self.pages = 0
        self._clock = clock

    # ---- RPCs ---------------------------------------------------------------------------

    async def ProcessPDF(
        self,
        request: _pb.ProcessPDFRequest,
        context: grpc.aio.ServicerContext[_pb.ProcessPDFRequest, _pb.ProcessPDFResponse],
    ) -> _pb.ProcessPDFResponse:
        with self.stats.track():
            checked = self._check(request, field="")
            return await self._process(request, checked)

    async def ProcessPDFBatch(
        self,
        request: _pb.ProcessPDFBatchRequest,
        context: grpc.aio.ServicerContext[_pb.ProcessPDFBatchRequest, _pb.ProcessPDFBatchResponse],
    ) -> _pb.ProcessPDFBatchResponse:
        with self.stats.track():
            started = self._clock.now()
            if not request.requests:
                raise invalid("requests", "must hold at least one document")
            if len(request.requests) > self.limits.max_batch:
                raise invalid(
                    "requests",
                    f"holds {len(request.requests)} documents; at most {self.limits.max_batch}",
                )
            checked = [
                self._check(one, field=f"requests[{index}].")
                for index, one in enumerate(request.requests)
            ]
            at_once = asyncio.Semaphore(request.requests[0].config.batch_size or len(checked))

            async def one(item: _pb.ProcessPDFRequest, plan: _Checked) -> _pb.ProcessPDFResponse:
                async with at_once:
                    return await self._process(item, plan)

            responses = await asyncio.gather(
                *(one(item, plan) for item, plan in zip(request.requests, checked, strict=True))
            )
            return _pb.ProcessPDFBatchResponse(
                responses=responses,
                metadata=processing_metadata(
                    checked[0].engine_name,
                    elapsed=self._clock.now() - started,
                    device="cpu",
                    batch_size=len(responses),
                    total_requests=self.stats.total_requests,
                ),
            )

    async def GetHealth(
        self,
        request: common_pb2.HealthRequest,
        context: grpc.aio.ServicerContext[common_pb2.HealthRequest, common_pb2.HealthResponse],
    ) -> common_pb2.HealthResponse:
        return common_pb2.HealthResponse(
            status="healthy",
            model_loaded=True,
            device="cpu",
            uptime_seconds=self.stats.uptime,
            version=__version__,
            loaded_models=list(self.engines),
            details={
                "default_engine": self.default_engine,
                **{f"alias:{alias}": name for alias, name in self.aliases.items()},
                "workers": str(sum(e.size for e in self.engines.values())),
                "worker_crashes": str(sum(e.crashes for e in self.engines.values())),
                "worker_timeouts": str(sum(e.timeouts for e in self.engines.values())),
                "ocr": self.ocr or "unavailable",
            },
        )

    async def GetStats(
        self,
        request: common_pb2.StatsRequest,
        context: grpc.aio.ServicerContext[common_pb2.StatsRequest, common_pb2.StatsResponse],
    ) -> common_pb2.StatsResponse:
        stats = self.stats.to_proto(engines=[])
        stats.queue_depth = sum(e.busy for e in self.engines.values())
        stats.extra["pages_processed"] = float(self.pages)
        stats.extra["worker_crashes"] = float(sum(e.crashes for e in self.engines.values()))
        stats.extra["worker_timeouts"] = float(sum(e.timeouts for e in self.engines.values()))
        return stats

    # ---- the work -----------------------------------------------------------------------

    def _check(self, request: _pb.ProcessPDFRequest, *, field: str) -> _Checked:
        size = len(request.pdf_content)
        if size == 0:
            raise invalid(f"{field}pdf_content", "must not be empty")
        if size > self.limits.max_bytes:
            raise invalid(
                f"{field}pdf_content", f"is {size} bytes; at most {self.limits.max_bytes}"
            )
        if not request.HasField("config"):
            engine_name = self.default_engine
            return _Checked(
                self.engines[engine_name], engine_name, ExtractOptions(), self.limits.timeout
            )
        config = request.config
        name = config.model_name.strip() or self.default_engine
        engine_name = self.aliases.get(name, name)
        if engine_name not in self.engines:
            loaded = ", ".join(sorted([*self.engines, *self.aliases]))
            raise FailedPrecondition(
                f"{field}config.model_name: engine {name!r} is not loaded here; loaded: {loaded}"
            )
        if config.batch_size < 0:
            raise invalid(f"{field}config.batch_size", f"must be >= 0, got {config.batch_size}")
        timeout = config.timeout_seconds
        if not math.isfinite(timeout) or timeout < 0:
            raise invalid(f"{field}config.timeout_seconds", f"must be a number >= 0, got {timeout}")
        first = config.first_page if config.HasField("first_page") else None
        last = config.last_page if config.HasField("last_page") else None
        for name_, page in (("first_page", first), ("last_page", last)):
            if page is not None and page < 1:
                raise invalid(f"{field}config.{name_}", f"must be >= 1, got {page}")
        if first is not None and last is not None and first > last:
            raise invalid(
                f"{field}config.last_page", f"must be >= first_page ({first}), got {last}"
            )
        options = ExtractOptions(
            tables=config.extract_tables,
            figures=config.extract_figures,
            text_blocks=config.extract_text_blocks,
            first_page=first,
            last_page=last,
        )
        return _Checked(
            self.engines[engine_name], engine_name, options, timeout or self.limits.timeout
        )

    async def _process(
        self, request: _pb.ProcessPDFRequest, checked: _Checked
    ) -> _pb.ProcessPDFResponse:
        started = self._clock.now()
        time_limit = checked.time_limit
        left = remaining(self._clock)
        if left is not None:
            if left <= 0:
                raise DeadlineExceeded("the deadline passed before processing began")
            time_limit = min(time_limit, left)
        result = await checked.engine.process(
            request.pdf_content,
            filename=request.filename,
            options=checked.options,
            time_limit=time_limit,
        )
        count = result.metadata.page_count
        last = min(checked.options.last_page or count, count)
        self.pages += max(0, last - (checked.options.first_page or 1) + 1)
        return _pb.ProcessPDFResponse(
            result=result,
            metadata=processing_metadata(
                checked.engine_name,
                elapsed=self._clock.now() - started,
                device="cpu",
                batch_size=1,
                total_requests=self.stats.total_requests,
            ),
        )
