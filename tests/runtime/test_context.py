"""Request metadata read into context variables."""

from __future__ import annotations

import re

import pytest

from servicegrid.runtime import (
    RequestContext,
    current_request_id,
    current_tenant,
    current_traceparent,
    request_scope,
)
from servicegrid.runtime.context import is_valid_traceparent, new_traceparent

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (VALID, True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra", True),
        (VALID.upper(), False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        (VALID + "-extra", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", False),
        ("", False),
    ],
)
def test_traceparent_validation(value: str, valid: bool) -> None:
    assert is_valid_traceparent(value) is valid


def test_new_traceparent_is_valid() -> None:
    assert is_valid_traceparent(new_traceparent())


def test_from_metadata_keeps_good_values_and_generates_the_rest() -> None:
    given = RequestContext.from_metadata(
        [("x-request-id", " abc-1 "), ("traceparent", VALID), ("x-tenant-id", "acme")]
    )
    assert given == RequestContext("abc-1", VALID, "acme")

    empty = RequestContext.from_metadata(None)
    assert re.fullmatch(r"[0-9a-f]{32}", empty.request_id)
    assert is_valid_traceparent(empty.traceparent)
    assert empty.tenant_id is None

    odd = RequestContext.from_metadata([("x-request-id", "a b\nc"), ("x-tenant-id", "  ")])
    assert odd.request_id != "a b\nc"
    assert odd.tenant_id is None


def test_first_value_wins_and_binary_values_are_ignored() -> None:
    ctx = RequestContext.from_metadata(
        [("x-tenant-id", b"bytes"), ("x-tenant-id", "first"), ("x-tenant-id", "second")]
    )
    assert ctx.tenant_id == "first"


def test_scope_sets_and_restores() -> None:
    assert (current_request_id(), current_traceparent(), current_tenant()) == (None, None, None)
    with request_scope(RequestContext("r1", VALID, "t1")):
        assert (current_request_id(), current_traceparent(), current_tenant()) == (
            "r1",
            VALID,
            "t1",
        )
        with request_scope(RequestContext("r2", VALID)):
            assert (current_request_id(), current_tenant()) == ("r2", None)
        assert current_request_id() == "r1"
    assert current_request_id() is None
