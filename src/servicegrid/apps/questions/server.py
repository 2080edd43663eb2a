"""``servicegrid serve questions``: the REST app and the gRPC servicer over one store."""

from __future__ import annotations

from servicegrid.apps._serving import serve_over_store
from servicegrid.apps.questions.rest import create_app
from servicegrid.apps.questions.servicer import QuestionServicer
from servicegrid.apps.questions.store import QuestionStore
from servicegrid.proto import question_service_pb2, question_service_pb2_grpc
from servicegrid.runtime import ServiceRegistration
from servicegrid.settings import Settings

__all__ = ["run_questions_service"]


def _registration(store: QuestionStore) -> ServiceRegistration:
    return ServiceRegistration.from_descriptor(
        question_service_pb2.DESCRIPTOR.services_by_name["QuestionService"],
        question_service_pb2_grpc.add_QuestionServiceServicer_to_server,
        QuestionServicer(store),
    )


async def run_questions_service(
    settings: Settings, *, host: str, port: int, grpc_port: int
) -> None:
    """Serve questions on REST ``host:port`` and gRPC ``host:grpc_port`` until SIGTERM."""
    await serve_over_store(
        settings,
        "questions",
        QuestionStore.from_settings(settings),
        lambda store: create_app(settings, store=store),
        _registration,
        host=host,
        port=port,
        grpc_port=grpc_port,
    )
