"""Concurrent embedding requests sent upstream as one ``GenerateEmbeddingsBatch`` RPC.

Every request that reaches :meth:`EmbeddingCoalescer.embed` during one turn of
the event loop joins the same RPC, sent at the end of that turn: no timer, so a
lone request waits for nothing. The embedding service batches across RPCs by
itself; what this saves is the per-RPC work on both sides (HTTP/2 frames,
protobuf, tasks), which under many single-text callers costs more CPU than the
gateway's own request handling (docs/benchmarks.md).

A caller sees only its own answer. When the shared RPC is refused as invalid
(which the gateway's own checks make rare), each request is sent again alone,
so one bad request never fails its neighbours; any other error is what every
request in the RPC would have met on its own, and each gets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.errors import ValidationError
from servicegrid.proto import embedding_service_pb2

__all__ = ["EmbeddingCoalescer"]

_pb = embedding_service_pb2


@dataclass(slots=True)
class _Waiting:
    texts: Sequence[str]
    model_name: str
    config: _pb.EmbeddingConfig | None
    answer: asyncio.Future[_pb.GenerateEmbeddingsResponse]


@dataclass(slots=True)
class _Round:
    waiting: list[_Waiting] = field(default_factory=list)
    texts: int = 0


class EmbeddingCoalescer:
    """Joins the ``generate_embeddings`` calls of one loop turn into one upstream RPC.

    ``max_texts`` bounds the texts of one RPC (the service's per-call limit): a
    request that would pass it starts a new RPC.
    """

    def __init__(self, client: EmbeddingClient, *, max_texts: int) -> None:
        self.client = client
        self.max_texts = max_texts
        self._round: _Round | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def embed(
        self,
        texts: Sequence[str],
        model_name: str,
        config: _pb.EmbeddingConfig | None = None,
    ) -> _pb.GenerateEmbeddingsResponse:
        """One embedding per text, in order, as ``EmbeddingClient.generate_embeddings``."""
        loop = asyncio.get_running_loop()
        current = self._round
        if current is not None and current.texts + len(texts) > self.max_texts:
            self._send(current)
            current = None
        if current is None:
            current = self._round = _Round()
            loop.call_soon(self._send_if_current, current)
        waiting = _Waiting(list(texts), model_name, config, loop.create_future())
        current.waiting.append(waiting)
        current.texts += len(texts)
        # A caller that goes away cancels only its own future, not the RPC its neighbours share.
        return await waiting.answer

    async def aclose(self) -> None:
        """Wait for the RPCs in flight (their callers are still owed an answer)."""
        if self._round is not None:
            self._send(self._round)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    def _send_if_current(self, sent: _Round) -> None:
        if self._round is sent:
            self._send(sent)

    def _send(self, sent: _Round) -> None:
        if self._round is sent:
            self._round = None
        task = asyncio.get_running_loop().create_task(self._call(sent.waiting))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _call(self, waiting: list[_Waiting]) -> None:
        try:
            if len(waiting) == 1:
                alone = waiting[0]
                answers = [
                    await self.client.generate_embeddings(
                        alone.texts, alone.model_name, alone.config
                    )
                ]
            else:
                answers = await self._many(waiting)
        except ValidationError as exc:
            if len(waiting) == 1:
                _settle(waiting[0], exc)
            else:  # find whose request it was: each alone
                await asyncio.gather(*(self._call([w]) for w in waiting))
            return
        except Exception as exc:  # every caller of this RPC gets its error
            for one in waiting:
                _settle(one, exc)
            return
        for one, answer in zip(waiting, answers, strict=True):
            _settle(one, answer)

    async def _many(self, waiting: list[_Waiting]) -> list[_pb.GenerateEmbeddingsResponse]:
        requests = [
            _pb.GenerateEmbeddingsRequest(texts=w.texts, model_name=w.model_name, config=w.config)
            for w in waiting
        ]
        response = await self.client.generate_embeddings_batch(requests)
        return list(response.responses)


def _settle(waiting: _Waiting, outcome: _pb.GenerateEmbeddingsResponse | BaseException) -> None:
    if waiting.answer.done():
        return
    if isinstance(outcome, BaseException):
        waiting.answer.set_exception(outcome)
    else:
        waiting.answer.set_result(outcome)
