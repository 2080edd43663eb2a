"""One execution walked from ``POST`` to the action call and back, naming the files it passes.

The walk is traced with ``sys.setprofile`` on the thread that serves the app and runs the
execution (the durable engine runs its steps there too); every servicegrid source file a
function of which runs is listed, in the order first entered. The list is printed (``pytest -s``
shows it) so that the path a reader has to follow is in plain sight, and it must keep the layers
in their order: routes → engine → walk → step runner → action invoker.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import servicegrid
from tests.integration.conftest import running
from tests.integration.test_workflows import create_workflow, execute, register_all, wait_done
from tests.support.action_services import ActionServices

SOURCE = Path(servicegrid.__file__).parent
ONE_STEP = [
    {
        "id": "extract",
        "service": "text-extraction",
        "action": "extract",
        "input": {"document_url": "${input.document_url}"},
    }
]
LAYERS = [
    "integration/routes/workflows.py",
    "integration/engine.py",
    "integration/runner.py",
    "integration/actions.py",
]
MOST_INTEGRATION_FILES = 14
"""Bounds on the files one execution passes through, so that the path stays short to follow:
those of the integration service, and all of servicegrid's (the transport seam's included).
The fourteenth is ``execution_sql.py``, the store's statements on the driver itself."""
MOST_FILES = 30


@pytest.fixture(scope="module")
def services() -> Iterator[ActionServices]:
    with ActionServices() as started:
        yield started


class FileTrace:
    """The servicegrid files whose functions run on this thread, in the order first entered."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self._seen: set[str] = set()

    def __enter__(self) -> FileTrace:
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.setprofile(None)

    def _profile(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        filename = frame.f_code.co_filename
        if filename in self._seen:
            return
        self._seen.add(filename)
        path = Path(filename)
        if path.is_relative_to(SOURCE):
            self.files.append(path.relative_to(SOURCE).as_posix())


async def test_one_execution_from_post_to_the_action_and_back(
    db_path: Path, services: ActionServices
) -> None:
    async with running(f"sqlite+aiosqlite:///{db_path}") as client:
        await register_all(client, services)
        workflow = await create_workflow(client, ONE_STEP)
        # once untraced, so that what runs only the first time (imports, caches) is not counted
        warm = await execute(client, workflow["id"], {"document_url": "https://x.test/warm"})
        await wait_done(client, warm["id"])
        services.log.reset()

        with FileTrace() as trace:
            started = await execute(client, workflow["id"], {"document_url": "https://x.test/a"})
            done = await wait_done(client, started["id"])

    assert done["status"] == "COMPLETED", done
    assert done["output"]["text"].startswith("Text of https://x.test/a")
    calls = services.calls("extract")
    assert [call["key"] for call in calls] == [f"{started['id']}:extract"]

    print(f"\n{len(trace.files)} files from POST to the action call and back:")
    for name in trace.files:
        print(f"  {name}")
    positions = [trace.files.index(layer) for layer in LAYERS]
    assert positions == sorted(positions), trace.files
    integration = [name for name in trace.files if name.startswith("integration/")]
    assert len(integration) <= MOST_INTEGRATION_FILES, integration
    assert len(trace.files) <= MOST_FILES, trace.files
