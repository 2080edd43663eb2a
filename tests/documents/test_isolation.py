"""IsolatedEngine: a crash or a hang takes only a worker, which is replaced; nothing leaks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from servicegrid.documents import ExtractOptions
from servicegrid.documents.isolation import IsolatedEngine
from servicegrid.errors import DeadlineExceeded, InternalError, ValidationError
from tests.support.misbehaving_engines import MisbehavingEngine

OPTIONS = ExtractOptions()
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def engine() -> AsyncIterator[IsolatedEngine]:
    isolated = IsolatedEngine(MisbehavingEngine, workers=2)
    await isolated.start()
    yield isolated
    await isolated.aclose()


async def run(engine: IsolatedEngine, pdf: bytes, time_limit: float = 30.0) -> str:
    result = await engine.process(pdf, filename="x.pdf", options=OPTIONS, time_limit=time_limit)
    return result.document.paragraphs[0].text


async def test_results_and_typed_errors_cross_the_process_boundary(engine: IsolatedEngine) -> None:
    assert engine.name == "misbehaving"
    assert await run(engine, b"fine") == "fine"
    with pytest.raises(ValidationError, match="not a PDF"):
        await run(engine, b"invalid")
    with pytest.raises(InternalError, match="a parser bug"):
        await run(engine, b"raise")


@pytest.mark.parametrize("how", [b"segfault", b"exit"])
async def test_a_crashing_worker_is_replaced(engine: IsolatedEngine, how: bytes) -> None:
    before = engine.crashes
    with pytest.raises(InternalError, match="crashed"):
        await run(engine, how)
    assert engine.crashes == before + 1
    assert [await run(engine, b"after %d" % i) for i in range(3)] == [
        "after 0",
        "after 1",
        "after 2",
    ]
    assert engine.busy == 0


async def test_a_hang_is_stopped_at_its_time_limit_and_the_worker_replaced(
    engine: IsolatedEngine,
) -> None:
    with pytest.raises(DeadlineExceeded, match="stopped"):
        await run(engine, b"hang", time_limit=0.5)
    assert engine.timeouts == 1
    assert await run(engine, b"still serving") == "still serving"
    assert engine.busy == 0
