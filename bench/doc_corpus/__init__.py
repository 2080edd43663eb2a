"""A generated ground-truth corpus for document layout, its scorer and the engines compared.

``generate`` writes the PDFs and their truth, ``score`` holds the metrics, ``peers`` the
adapters from each engine's output to one common :class:`~bench.doc_corpus.peers.Extraction`.
"""

from bench.doc_corpus.generate import generate
from bench.doc_corpus.truth import KINDS, DocumentTruth, PageTruth, TableTruth, truth_path

__all__ = ["KINDS", "DocumentTruth", "PageTruth", "TableTruth", "generate", "truth_path"]
