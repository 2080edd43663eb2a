"""Discovery fixtures: a real etcd for each test that asks for one (skipped without the binary)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.etcd_server import EtcdNotFound, EtcdServer, find_etcd


@pytest.fixture(scope="session")
def etcd_binary() -> Path:
    """The ``etcd`` binary; skips when there is none (``bash tools/ensure_etcd.sh`` installs it)."""
    try:
        return find_etcd()
    except EtcdNotFound as exc:
        pytest.skip(str(exc))


@pytest.fixture
def etcd_server(etcd_binary: Path) -> Iterator[EtcdServer]:
    """A fresh single-member etcd on loopback, ready in well under a second; tests may kill it."""
    with EtcdServer(binary=etcd_binary) as running:
        yield running
