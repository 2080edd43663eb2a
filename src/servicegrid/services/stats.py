"""Counters and latency percentiles a model service reports through GetStats."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from servicegrid.batching import EngineStats
from servicegrid.clock import SYSTEM_CLOCK, Clock
from servicegrid.errors import ResourceExhausted
from servicegrid.proto import common_pb2

__all__ = ["ServiceStats"]


class ServiceStats:
    """Per-service totals and the latency of the last ``window`` calls. Event-loop confined."""

    def __init__(self, *, window: int = 1024, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self.started = clock.now()
        self.total_requests = 0
        self.total_errors = 0
        self.total_items = 0
        self.rejected = 0
        self.truncated = 0
        self._latencies: deque[float] = deque(maxlen=window)

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count one call and time it; an exception counts as an error (and a rejection if shed)."""
        started = self._clock.now()
        self.total_requests += 1
        try:
            yield
        except BaseException as error:
            self.total_errors += 1
            if isinstance(error, ResourceExhausted):
                self.rejected += 1
            raise
        finally:
            self._latencies.append(self._clock.now() - started)

    @property
    def uptime(self) -> float:
        return self._clock.now() - self.started

    def _percentile(self, fraction: float) -> float:
        if not self._latencies:
            return 0.0
        ordered = sorted(self._latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def to_proto(
        self,
        *,
        engines: list[EngineStats],
        cache: dict[str, Any] | None = None,
        gpu_memory_used_mb: int = 0,
    ) -> common_pb2.StatsResponse:
        batches = sum(e.total_batches for e in engines)
        items = sum(e.total_items for e in engines)
        latencies = list(self._latencies)
        return common_pb2.StatsResponse(
            total_requests=self.total_requests,
            total_errors=self.total_errors,
            total_items=self.total_items,
            average_latency_ms=1000 * statistics.fmean(latencies) if latencies else 0.0,
            p50_latency_ms=1000 * self._percentile(0.50),
            p99_latency_ms=1000 * self._percentile(0.99),
            cache_hits=int(cache["hits"]) if cache else 0,
            cache_misses=int(cache["misses"]) if cache else 0,
            cache_hit_rate=float(cache["hit_rate"]) if cache else 0.0,
            queue_depth=sum(e.queued for e in engines),
            average_batch_size=items / batches if batches else 0.0,
            gpu_memory_used_mb=gpu_memory_used_mb,
            uptime_seconds=self.uptime,
            # the engines' refusals reach callers as ResourceExhausted: already in self.rejected
            rejected_requests=self.rejected,
            truncated_texts=self.truncated,
            extra={
                "model_batches": float(batches),
                "expired_items": float(sum(e.expired for e in engines)),
                "failed_batches": float(sum(e.failed_batches for e in engines)),
                "queued_tokens": float(sum(e.queued_tokens for e in engines)),
                "queued_requests": float(sum(e.queued_requests for e in engines)),
                "refused_queue_full": float(sum(e.rejected for e in engines)),
                "refused_deadline": float(sum(e.refused_late for e in engines)),
                "completed_items": float(sum(e.completed_items for e in engines)),
                "goodput_items_per_second": sum(e.goodput for e in engines),
                "backlog_seconds": max((e.backlog_seconds for e in engines), default=0.0),
            },
        )
