"""Document engines that misbehave on purpose, for the worker-isolation tests.

They live in an importable module because the workers are spawned processes.
A document's first bytes say what to do: ``hang``, ``segfault``, ``exit``,
``raise``, ``invalid``; anything else gets a one-paragraph result.
"""

from __future__ import annotations

import ctypes
import os
import time

from servicegrid.documents import ExtractOptions
from servicegrid.errors import ValidationError
from servicegrid.proto import docling_vlm_service_pb2 as pb


class MisbehavingEngine:
    name = "misbehaving"

    def process(self, pdf: bytes, *, filename: str, options: ExtractOptions) -> pb.DocTagsResult:
        if pdf.startswith(b"hang"):
            time.sleep(3600)
        if pdf.startswith(b"segfault"):
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        if pdf.startswith(b"exit"):
            os._exit(3)
        if pdf.startswith(b"raise"):
            raise RuntimeError("a parser bug")
        if pdf.startswith(b"invalid"):
            raise ValidationError("pdf_content: not a PDF")
        result = pb.DocTagsResult()
        result.document.paragraphs.add(text=pdf.decode(errors="replace"), page_number=1)
        result.metadata.filename = filename
        result.metadata.processing_model = self.name
        return result
