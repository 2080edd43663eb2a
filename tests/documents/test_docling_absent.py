"""Without docling installed: the engine refuses to start, the service leaves it out."""

from __future__ import annotations

import functools
import importlib.util
import sys
from typing import Any

import pytest

from servicegrid.documents.docling_engine import DoclingEngine
from servicegrid.errors import FailedPrecondition
from servicegrid.services.documents.app import engine_factories
from servicegrid.settings import load_settings


@pytest.fixture
def no_docling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import docling`` fail, whether or not it is installed."""
    for name in ("docling", "docling.document_converter", "docling.datamodel"):
        monkeypatch.setitem(sys.modules, name, None)


def test_engine_without_docling_names_the_extra(no_docling: None) -> None:
    with pytest.raises(FailedPrecondition) as info:
        DoclingEngine(max_bytes=1_000, max_pages=5)
    message = str(info.value)
    assert "servicegrid[docling]" in message
    assert "'docling' extra" in message
    assert "GPU" in message
    assert info.value.grpc_code == "FAILED_PRECONDITION"


def _find_spec(present: bool) -> Any:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "docling":
            return object() if present else None
        return real(name, *args, **kwargs)

    return find_spec


def test_service_leaves_docling_out_when_it_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", _find_spec(present=False))
    factories, _ = engine_factories(load_settings())
    assert "docling" not in factories
    assert "text-layer" in factories


def test_service_adds_docling_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", _find_spec(present=True))
    settings = load_settings()
    factories, aliases = engine_factories(settings)
    factory = factories["docling"]
    assert isinstance(factory, functools.partial)
    assert factory.func is DoclingEngine
    assert factory.keywords == {
        "max_bytes": settings.documents_max_mb * 1024 * 1024,
        "max_pages": settings.documents_max_pages,
    }
    assert "docling" not in aliases
