"""Run a document engine in worker processes, so a hostile PDF can crash or hang only a worker.

Each worker is a spawned process that builds its engine once (from a picklable
factory) and then processes one document at a time. A document that outlives
its time limit gets its worker killed (the work is cancelled, not left running)
and DeadlineExceeded; a worker that dies (a parser segfault, the OOM killer)
gives InternalError. Either way a fresh worker takes its place, and the service
goes on. Results cross the process boundary as serialized protobuf; errors as
(gRPC code, message), rebuilt through the one error table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from servicegrid.documents.engine import DocumentEngine, ExtractOptions
from servicegrid.errors import (
    DeadlineExceeded,
    InternalError,
    ServiceError,
    ServiceUnavailableError,
    error_for_grpc_code,
)
from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["EngineFactory", "IsolatedEngine"]

EngineFactory = Callable[[], DocumentEngine]
"""Builds the engine inside a worker; must pickle (a class, or functools.partial of one)."""

_log = logging.getLogger("servicegrid.documents")
_CONTEXT = multiprocessing.get_context("spawn")  # never fork a process that runs gRPC threads


@dataclass(frozen=True, slots=True)
class _Job:
    pdf: bytes
    filename: str
    options: ExtractOptions


def _serve(factory: EngineFactory, connection: multiprocessing.connection.Connection) -> None:
    """The worker's loop: one job in, ("ok", bytes) or ("error", code, message) out."""
    engine = factory()
    connection.send(("ready", engine.name))
    while True:
        try:
            job: _Job = connection.recv()
        except EOFError:
            return
        try:
            result = engine.process(job.pdf, filename=job.filename, options=job.options)
            connection.send(("ok", result.SerializeToString()))
        except ServiceError as exc:
            connection.send(("error", exc.grpc_code, exc.message))
        except Exception as exc:  # a parser bug on odd input: the caller gets INTERNAL
            connection.send(("error", "INTERNAL", f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, factory: EngineFactory, name: str) -> None:
        parent, child = _CONTEXT.Pipe()
        self.connection = parent
        self.process: BaseProcess = _CONTEXT.Process(
            target=_serve, args=(factory, child), name=name, daemon=True
        )
        self.process.start()
        child.close()

    def wait_ready(self, timeout: float) -> str:
        if not self.connection.poll(timeout):
            self.kill()
            raise ServiceUnavailableError(f"document worker did not start within {timeout:g} s")
        message = self.connection.recv()
        return str(message[1])

    def run(self, job: _Job) -> tuple[Any, ...]:
        """Blocking: send the job and wait for its answer; EOFError if the worker dies."""
        self.connection.send(job)
        answer: tuple[Any, ...] = self.connection.recv()
        return answer

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(timeout=10)
        self.connection.close()


class IsolatedEngine:
    """``workers`` processes running the engine ``factory`` builds; ``process`` is async.

    ``start()`` spawns them (seconds: each imports its parsers); ``aclose()`` stops them.
    """

    def __init__(
        self, factory: EngineFactory, *, workers: int = 2, start_timeout: float = 120.0
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.factory = factory
        self.size = workers
        self.start_timeout = start_timeout
        self.name = ""
        self.crashes = 0
        self.timeouts = 0
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()

    async def start(self) -> None:
        workers = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        for worker in workers:
            self._idle.put_nowait(worker)

    async def _spawn(self) -> _Worker:
        worker = await asyncio.to_thread(_Worker, self.factory, "document-worker")
        self._all.add(worker)
        self.name = await asyncio.to_thread(worker.wait_ready, self.start_timeout)
        return worker

    async def aclose(self) -> None:
        workers, self._all = list(self._all), set()
        for worker in workers:
            await asyncio.to_thread(worker.kill)

    @property
    def busy(self) -> int:
        return self.size - self._idle.qsize()

    async def process(
        self, pdf: bytes, *, filename: str, options: ExtractOptions, time_limit: float
    ) -> pb.DocTagsResult:
        """The engine's result for ``pdf``, within ``time_limit`` seconds of starting on it.

        Waiting for a free worker is bounded by the caller's own deadline (the
        gRPC runtime cancels this call when it passes).
        """
        worker = await self._idle.get()
        replace = False
        try:
            runner = asyncio.ensure_future(
                asyncio.to_thread(worker.run, _Job(pdf, filename, options))
            )
            try:
                answer = await asyncio.wait_for(asyncio.shield(runner), time_limit)
            except (TimeoutError, asyncio.CancelledError) as stopped:
                replace = True
                worker.kill()  # cancels the work: the blocked recv ends with EOFError
                with contextlib.suppress(Exception):
                    await runner
                if isinstance(stopped, asyncio.CancelledError):
                    raise
                self.timeouts += 1
                raise DeadlineExceeded(
                    f"processing {filename or 'the document'} took longer than {time_limit:g} s;"
                    " it was stopped"
                ) from stopped
            except EOFError as died:
                replace = True
                self.crashes += 1
                code = worker.process.exitcode
                _log.error("document worker died on %s (exit code %s)", filename, code)
                raise InternalError(
                    f"the PDF parser crashed on {filename or 'the document'} (exit code {code});"
                    " the service is unharmed"
                ) from died
        finally:
            if replace:
                self._all.discard(worker)
                worker = await self._spawn()
            self._idle.put_nowait(worker)
        if answer[0] == "ok":
            return pb.DocTagsResult.FromString(answer[1])
        raise error_for_grpc_code(str(answer[1]), str(answer[2]))
