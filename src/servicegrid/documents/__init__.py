"""Document engines that turn a PDF into the Docling result message."""

from servicegrid.documents.engine import DocumentEngine, ExtractOptions
from servicegrid.documents.pdf_input import DEFAULT_MAX_BYTES, DEFAULT_MAX_PAGES, open_pdf
from servicegrid.documents.text_layer import TextLayerEngine

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PAGES",
    "DocumentEngine",
    "ExtractOptions",
    "TextLayerEngine",
    "open_pdf",
]
