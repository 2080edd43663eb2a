"""Input that cannot be processed is refused with a ValidationError that says why."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from servicegrid.documents import ExtractOptions, TextLayerEngine, open_pdf
from servicegrid.errors import ValidationError
from tests.documents.conftest import new_pdf, text_at

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pages": 50}


def encrypted_pdf() -> bytes:
    pdf = new_pdf()
    pdf.set_encryption(owner_password="owner-secret", user_password="user-secret")
    pdf.add_page()
    text_at(pdf, 72, "Secret text.", size=11)
    return bytes(pdf.output())


def refused(pdf: bytes, **limits: int) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        open_pdf(pdf, **{**LIMITS, **limits})
    return caught.value


def test_valid_pdf_opens(sample_pdf: bytes) -> None:
    with open_pdf(sample_pdf, **LIMITS) as document:
        assert len(document.pages) == 2


def test_empty_bytes() -> None:
    error = refused(b"")
    assert error.message == "pdf_content: is empty"
    assert error.grpc_code == "INVALID_ARGUMENT"
    assert error.validation_errors == [
        {"field": "pdf_content", "message": "is empty", "type": "value_error"}
    ]


def test_random_bytes_are_not_a_pdf() -> None:
    error = refused(random.Random(7).randbytes(4096))
    assert error.message == "pdf_content: is not a PDF (no %PDF- header)"


def test_garbage_after_a_pdf_header_is_malformed() -> None:
    error = refused(b"%PDF-1.7\n" + random.Random(7).randbytes(4096))
    assert error.message.startswith("pdf_content: is truncated or malformed")


def test_truncated_pdf(sample_pdf: bytes) -> None:
    error = refused(sample_pdf[: len(sample_pdf) // 2])
    assert error.message.startswith("pdf_content: is truncated or malformed")
    assert error.__cause__ is not None


def test_encrypted_pdf_needs_a_password() -> None:
    error = refused(encrypted_pdf())
    assert error.message == "pdf_content: is encrypted and needs a password"


def test_too_many_bytes(sample_pdf: bytes) -> None:
    error = refused(sample_pdf, max_bytes=1000)
    assert error.message == f"pdf_content: is {len(sample_pdf)} bytes; at most 1000 are allowed"


def test_too_many_pages(blank_pdf: Callable[[int], bytes]) -> None:
    error = refused(blank_pdf(4), max_pages=3)
    assert error.message == "pdf_content: has 4 pages; at most 3 are allowed"


def test_page_limit_is_inclusive(blank_pdf: Callable[[int], bytes]) -> None:
    with open_pdf(blank_pdf(3), max_bytes=LIMITS["max_bytes"], max_pages=3) as document:
        assert len(document.pages) == 3


def test_engine_applies_its_limits(sample_pdf: bytes) -> None:
    engine = TextLayerEngine(max_pages=1)
    with pytest.raises(ValidationError, match=r"pdf_content: has 2 pages; at most 1"):
        engine.process(sample_pdf, filename="s.pdf", options=ExtractOptions())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ExtractOptions(first_page=0), "first_page: must be at least 1, got 0"),
        (ExtractOptions(last_page=0), "last_page: must be at least 1, got 0"),
        (ExtractOptions(first_page=3), "first_page: 3 is past the document's 2 pages"),
        (ExtractOptions(last_page=7), "last_page: 7 is past the document's 2 pages"),
        (ExtractOptions(first_page=2, last_page=1), "first_page: 2 is after last_page 1"),
    ],
)
def test_bad_page_range(
    engine: TextLayerEngine, sample_pdf: bytes, options: ExtractOptions, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        engine.process(sample_pdf, filename="s.pdf", options=options)
    assert caught.value.message == message


def test_check_page_range_returns_the_pages() -> None:
    assert list(ExtractOptions().check_page_range(3)) == [1, 2, 3]
    assert list(ExtractOptions(first_page=2).check_page_range(3)) == [2, 3]
    assert list(ExtractOptions(first_page=2, last_page=2).check_page_range(3)) == [2]


@pytest.mark.parametrize(
    "pdf",
    [b"", b"not a pdf", b"%PDF-1.4\n%%EOF", encrypted_pdf()],
    ids=["empty", "text", "header-only", "encrypted"],
)
def test_engine_refuses_bad_input(engine: TextLayerEngine, pdf: bytes) -> None:
    with pytest.raises(ValidationError, match=r"^pdf_content: "):
        engine.process(pdf, filename="bad.pdf", options=ExtractOptions())
