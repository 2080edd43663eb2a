"""Seed 000, Reranking Service, "Client Usage": rerank, rerank several batches, models."""

import asyncio
import os

from servicegrid.clients import RerankingClient
from servicegrid.proto import reranking_service_pb2, reranking_service_pb2_grpc  # noqa: F401


async def main():
    # Initialize client
    reranking_client = RerankingClient(
        service_url=os.getenv("RERANKING_SERVICE_URL", "localhost:50053")
    )

    # Rerank documents
    query = "diabetes treatment"
    documents = [
        "Metformin is commonly used to treat type 2 diabetes",
        "Insulin therapy is essential for type 1 diabetes",
        "Exercise and diet are important for diabetes management",
    ]

    results = await reranking_client.rerank_batch(
        query=query,
        documents=documents,
        config=reranking_service_pb2.RerankingConfig(
            model_name="cross-encoder/ms-marco-MiniLM-L-6-v2",
            batch_size=16,
            timeout_seconds=30.0,
            return_documents=True,
        ),
    )

    print(f"Reranking completed for {len(results.results)} documents")
    for result in results.results:
        print(f"Document {result.document_index}: score={result.score:.4f}")
        print(f"Text: {result.document[:100]}...")

    # Rerank multiple batches
    batch_requests = [
        reranking_service_pb2.RerankBatchRequest(
            query="diabetes treatment", documents=["doc1", "doc2", "doc3"]
        ),
        reranking_service_pb2.RerankBatchRequest(
            query="hypertension management", documents=["doc4", "doc5", "doc6"]
        ),
    ]

    batch_response = await reranking_client.rerank_multiple_batches(batch_requests)
    print(f"Multiple batch reranking completed: {len(batch_response.responses)} responses")

    # List available models
    models = await reranking_client.list_models()
    for model in models.models:
        print(
            f"Model: {model.name}, Max Length: {model.max_sequence_length}, "
            f"Available: {model.available}"
        )


if __name__ == "__main__":
    asyncio.run(main())
