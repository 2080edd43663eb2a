"""Seed 002's orchestrator usage: a user's question answered from their questions, with citations.

Needs the model services (embedding, reranking), the question and user services, and
optionally LLM hosts (``SERVICEGRID_LLM_URLS``; without them the answer is extractive).
The index is Qdrant's local mode in ``SERVICEGRID_QDRANT_PATH`` (one process at a time),
or the Qdrant server at ``QDRANT_URL``.

    python examples/seed002_orchestrator.py
"""

import asyncio

from servicegrid import OrchestrationRequest, orchestrator_service


async def main() -> None:
    request = OrchestrationRequest(
        user_id="user-123",
        query="What is machine learning?",
        context_type="questions",
        max_results=5,
    )
    try:
        response = await orchestrator_service.orchestrate_user_query(request)
    finally:
        await orchestrator_service.aclose()
    print(f"answer ({response.answer_mode}): {response.answer}")
    for number, citation in enumerate(response.citations, start=1):
        print(f"  [{number}] {citation.source} {citation.id}: {citation.title}")
    for used in response.services_used:
        print(f"  {used.service}: {used.status} {used.reason}".rstrip())
    print(f"processing_time_ms: {response.processing_time_ms:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
