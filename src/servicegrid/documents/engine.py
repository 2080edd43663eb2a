"""What a document engine is, and the options one call runs with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from servicegrid.errors import ValidationError
from servicegrid.proto import docling_vlm_service_pb2 as pb

__all__ = ["DocumentEngine", "ExtractOptions", "pdf_title", "stamp_metadata"]


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    """What to extract; ``first_page``/``last_page`` are 1-based and inclusive (None: all)."""

    tables: bool = True
    figures: bool = True
    text_blocks: bool = True
    first_page: int | None = None
    last_page: int | None = None

    def check_page_range(self, page_count: int) -> range:
        """The 1-based page numbers to process; ValidationError names the bad field."""
        first = 1 if self.first_page is None else self.first_page
        last = page_count if self.last_page is None else self.last_page
        if first < 1:
            raise ValidationError.for_field("first_page", f"must be at least 1, got {first}")
        if last < 1:
            raise ValidationError.for_field("last_page", f"must be at least 1, got {last}")
        if first > page_count:
            raise ValidationError.for_field(
                "first_page", f"{first} is past the document's {page_count} pages"
            )
        if last > page_count:
            raise ValidationError.for_field(
                "last_page", f"{last} is past the document's {page_count} pages"
            )
        if first > last:
            raise ValidationError.for_field("first_page", f"{first} is after last_page {last}")
        return range(first, last + 1)


@runtime_checkable
class DocumentEngine(Protocol):
    """Turns one PDF into the Docling result message."""

    name: str

    def process(self, pdf: bytes, *, filename: str, options: ExtractOptions) -> pb.DocTagsResult:
        """Extract ``pdf``; raises ValidationError when the input cannot be processed."""
        ...


def pdf_title(metadata_title: object) -> str:
    """The PDF's own ``/Title``, the fallback when no title is found in the pages."""
    return metadata_title.strip() if isinstance(metadata_title, str) else ""


def stamp_metadata(
    result: pb.DocTagsResult,
    pdf: bytes,
    *,
    filename: str,
    page_count: int,
    engine: str,
    seconds: float,
) -> pb.DocTagsResult:
    """``result`` with seed 000's DocumentMetadata filled in (SHA-256 of ``pdf``)."""
    result.metadata.CopyFrom(
        pb.DocumentMetadata(
            filename=filename,
            page_count=page_count,
            processing_model=engine,
            processing_time_ms=max(0, round(seconds * 1000)),
            checksum=hashlib.sha256(pdf).hexdigest(),
        )
    )
    return result
