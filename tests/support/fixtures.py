"""Fixture builders that several test modules share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def started_per_module(start: Callable[[], AbstractContextManager[T]]) -> Any:
    """A module-scoped fixture: what ``start()`` runs, entered once for the module's tests.

    The fixture takes the name it is assigned to: ``dns_server = started_per_module(DnsServer)``.
    """

    @pytest.fixture(scope="module")
    def started() -> Iterator[T]:
        with start() as running:
            yield running

    return started
