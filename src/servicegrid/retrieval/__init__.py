"""Hybrid retrieval for the orchestrator: chunks, BM25 and dense vectors in Qdrant, fusion,
reranking, and cited answers.

Needs the ``retrieval`` extra (qdrant-client). docs/orchestrator.md describes it.
"""
