"""The sample questions an empty store starts with when ``SERVICEGRID_SAMPLE_DATA`` is on.

They belong to the users service's sample users ``user-123``, ``user-456`` and ``user-789``.
"""

from __future__ import annotations

from typing import Final

from servicegrid.apps.questions.schemas import QuestionCreate

__all__ = ["SAMPLE_QUESTIONS"]

SAMPLE_QUESTIONS: Final = (
    QuestionCreate(
        id="q-001",
        user_id="user-123",
        title="What is machine learning?",
        body="How does machine learning differ from ordinary programming, and where should a "
        "beginner start?",
        tags=["machine-learning", "basics"],
    ),
    QuestionCreate(
        id="q-002",
        user_id="user-123",
        title="How do embeddings capture meaning?",
        body="Sentence embeddings put texts with similar meaning close together. What does the "
        "model learn that makes this work?",
        tags=["embeddings", "nlp"],
    ),
    QuestionCreate(
        id="q-003",
        user_id="user-123",
        title="When should I use a vector database?",
        body="For retrieval-augmented generation, is a vector database worth running, or is an "
        "index in memory enough?",
        tags=["vector-database", "retrieval"],
    ),
    QuestionCreate(
        id="q-004",
        user_id="user-456",
        title="How do I choose indexes for a PostgreSQL table?",
        body="Queries on a large orders table are slow. Which columns are worth an index?",
        tags=["databases", "postgresql"],
    ),
    QuestionCreate(
        id="q-005",
        user_id="user-789",
        title="How does Raft reach consensus?",
        body="How do leader election and log replication keep the replicas of a distributed "
        "system in agreement?",
        tags=["consensus", "distributed-systems"],
    ),
    QuestionCreate(
        id="q-006",
        user_id="user-456",
        title="Should I normalise my database schema?",
        body="When does normalisation help, and when is a denormalised table the better choice?",
        tags=["databases", "schema-design"],
    ),
)
