"""A client over several OpenAI-compatible LLM hosts (seed 004's Distributed LLM Client).

.. code-block:: python

    from servicegrid.llm import DistributedLLMClient, LLMHost, LoadBalancingStrategy

    hosts = [LLMHost(name="host1", url="https://llm1.example.com", weight=2.0)]
    async with DistributedLLMClient(hosts=hosts) as client:
        answer = await client.chat("Hello", model="llama3")

Loads no model library: the hosts run the models.
"""

from servicegrid.llm.chat import ChatCompletion, Messages
from servicegrid.llm.client import DistributedLLMClient
from servicegrid.llm.discovery import Discover
from servicegrid.llm.hosts import HostMetrics, LLMHost
from servicegrid.llm.latency import LatencyEwma
from servicegrid.llm.strategies import LoadBalancingStrategy
from servicegrid.llm.streaming import iter_sse_data

__all__ = [
    "ChatCompletion",
    "Discover",
    "DistributedLLMClient",
    "HostMetrics",
    "LLMHost",
    "LatencyEwma",
    "LoadBalancingStrategy",
    "Messages",
    "iter_sse_data",
]
