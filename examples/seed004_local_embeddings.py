"""Seed 004, "Local Embeddings": configure, load, embed, get info, unload."""

import asyncio
import os

import torch

from servicegrid import LocalEmbeddingConfig, LocalEmbeddingModel, ModelBackend

# The seed runs on "cuda". SERVICEGRID_DEVICE picks the device here ("cuda", "cuda:N" or
# "cpu"); unset, it is the GPU when one is visible and the CPU otherwise, so the example
# runs on any machine.
DEVICE = os.getenv("SERVICEGRID_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


async def main():
    # Configure
    config = LocalEmbeddingConfig(
        model_name="sentence-transformers/all-MiniLM-L6-v2",
        backend=ModelBackend.SENTENCE_TRANSFORMERS,
        device=DEVICE,  # or "cpu"
        batch_size=32,
    )

    # Create and load
    model = LocalEmbeddingModel(config)
    await model.load()

    # Generate embeddings
    embeddings = await model.embed(["text1", "text2", "text3"])

    # Get info
    info = model.get_info()
    print(f"Dimension: {info['embedding_dimension']}")

    await model.unload()

    print("embeddings:", embeddings.shape, embeddings.dtype, "on", info["device"])


if __name__ == "__main__":
    asyncio.run(main())
