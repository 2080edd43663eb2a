"""Seed 004, "Production LLM Service": generate, then read the metrics.

The LLM hosts come from the environment: ``SERVICEGRID_LLM_URLS`` (comma-separated
OpenAI-compatible base URLs, ``OPENAI_API_KEY`` sent to them) or
``SERVICEGRID_LLM_SERVICE`` (found through discovery); ``SERVICEGRID_LLM_MODEL`` names
the model.
"""

import asyncio

from servicegrid import LLMRequest, ProductionLLMService


async def main():
    service = ProductionLLMService()
    await service.start()

    # Generate
    request = LLMRequest(prompt="Hello, how are you?")
    response = await service.generate(request)

    # Get metrics
    metrics = service.get_metrics()
    print(f"Generations: {metrics['generation_count']}")
    print(f"Tokens used: {metrics['total_tokens_used']}")

    await service.stop()


if __name__ == "__main__":
    asyncio.run(main())
