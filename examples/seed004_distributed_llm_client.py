"""Seed 004, "Distributed LLM Client": two weighted hosts, a request, a health check.

The hosts' URLs come from ``LLM_HOSTS`` (comma-separated, e.g.
``LLM_HOSTS=http://127.0.0.1:1234,http://127.0.0.1:1235``); without it, the seed's own.
"""

import asyncio
import os

from servicegrid import DistributedLLMClient, LLMHost, LoadBalancingStrategy

LLM_HOSTS = os.getenv("LLM_HOSTS", "https://llm1.example.com,https://llm2.example.com").split(",")

payload = {
    "model": os.getenv("LLM_MODEL", "llama3"),
    "messages": [{"role": "user", "content": "Hello, how are you?"}],
}


async def main():
    # Configure hosts
    hosts = [
        LLMHost(name="host1", url=LLM_HOSTS[0], weight=2.0),
        LLMHost(name="host2", url=LLM_HOSTS[1], weight=1.0),
    ]

    # Create client with weighted random strategy
    client = DistributedLLMClient(hosts=hosts, strategy=LoadBalancingStrategy.WEIGHTED_RANDOM)

    await client.start()

    # Make request (automatically load balanced with failover)
    response = await client.post("/v1/chat/completions", json=payload)
    print("response:", response.status_code, response.json()["choices"][0]["message"]["content"])

    # Check health
    health = await client.health_check_all()
    for host_name, status in health.items():
        print(f"{host_name}: {status['status']}")

    await client.stop()


if __name__ == "__main__":
    asyncio.run(main())
