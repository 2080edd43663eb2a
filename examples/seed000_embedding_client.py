"""Seed 000, Embedding Service, "Client Usage": single request, batch request, models."""

import asyncio
import os

from servicegrid.clients import EmbeddingClient
from servicegrid.proto import embedding_service_pb2, embedding_service_pb2_grpc  # noqa: F401


async def main():
    # Initialize client
    embedding_client = EmbeddingClient(
        service_url=os.getenv("EMBEDDING_SERVICE_URL", "localhost:50052")
    )

    # Generate embeddings for single request
    embeddings = await embedding_client.generate_embeddings(
        texts=["This is a test document", "Another test document"],
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        config=embedding_service_pb2.EmbeddingConfig(
            normalize=True, batch_size=32, timeout_seconds=30.0
        ),
    )

    print(f"Generated {len(embeddings.embeddings)} embeddings")
    for i, embedding in enumerate(embeddings.embeddings):
        print(f"Embedding {i}: dimension={embedding.dimension}, norm={embedding.norm}")

    # Generate embeddings for batch request
    batch_request = embedding_service_pb2.GenerateEmbeddingsBatchRequest(
        requests=[
            embedding_service_pb2.GenerateEmbeddingsRequest(
                texts=["Document 1", "Document 2"],
                model_name="sentence-transformers/all-MiniLM-L6-v2",
            ),
            embedding_service_pb2.GenerateEmbeddingsRequest(
                texts=["Document 3", "Document 4"],
                model_name="sentence-transformers/all-MiniLM-L6-v2",
            ),
        ]
    )

    batch_response = await embedding_client.generate_embeddings_batch(batch_request)
    print(f"Batch processing completed: {len(batch_response.responses)} responses")

    # List available models
    models = await embedding_client.list_models()
    for model in models.models:
        print(f"Model: {model.name}, Dimension: {model.dimension}, Available: {model.available}")


if __name__ == "__main__":
    asyncio.run(main())
