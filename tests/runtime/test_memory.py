"""Free memory goes back to the OS only after an engine has stayed idle."""

from __future__ import annotations

import asyncio
import sys

import pytest

from servicegrid.runtime.memory import IdleMemoryRelease, trim_free_memory
from tests.batching.words import until


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trimming_runs_on_this_c_library() -> None:
    assert trim_free_memory() is True


async def test_a_trim_follows_a_quiet_moment_and_work_in_between_postpones_it() -> None:
    trimmed = asyncio.Event()
    calls: list[str] = []

    def trim() -> bool:
        calls.append("trim")
        trimmed.set()
        return True

    release = IdleMemoryRelease(delay=0.05, trim=trim)
    idle = True
    went_idle = release.watch(lambda: idle)

    went_idle()
    went_idle()  # restarts the wait: still one trim
    await asyncio.wait_for(trimmed.wait(), 10)
    assert calls == ["trim"]
    assert release.trims == 1

    idle = False  # busy again by the time the wait ends: no trim
    went_idle()
    assert release.waiting
    await until(lambda: not release.waiting)
    assert release.trims == 1

    went_idle()
    release.cancel()
    assert not release.waiting


async def test_a_failing_trim_is_logged_and_harmless(caplog: pytest.LogCaptureFixture) -> None:
    done = asyncio.Event()

    def broken() -> bool:
        done.set()
        raise OSError("no")

    release = IdleMemoryRelease(delay=0.0, trim=broken)
    release.watch(lambda: True)()
    await asyncio.wait_for(done.wait(), 10)
    await until(lambda: "giving free memory back failed" in caplog.text)
