"""Seed 002's questions service: questions with tags, keyword search and a change feed.

REST (:func:`create_app`) and gRPC (:class:`QuestionServicer`) serve the same
:class:`QuestionStore` (SQLite or PostgreSQL) with the same checks;
:func:`~servicegrid.apps.questions.server.run_questions_service` runs both.
"""

from servicegrid.apps.questions.rest import create_app
from servicegrid.apps.questions.schemas import (
    ChangesAnswer,
    Question,
    QuestionChange,
    QuestionCreate,
    QuestionDeleted,
    QuestionHit,
    QuestionUpdate,
    SearchAnswer,
)
from servicegrid.apps.questions.servicer import QuestionServicer
from servicegrid.apps.questions.store import QuestionStore

__all__ = [
    "ChangesAnswer",
    "Question",
    "QuestionChange",
    "QuestionCreate",
    "QuestionDeleted",
    "QuestionHit",
    "QuestionServicer",
    "QuestionStore",
    "QuestionUpdate",
    "SearchAnswer",
    "create_app",
]
