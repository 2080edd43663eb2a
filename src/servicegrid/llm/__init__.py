"""A client over several OpenAI-compatible LLM hosts (seed 004's Distributed LLM Client).

.. code-block:: python

    from servicegrid.llm import DistributedLLMClient, LLMHost, LoadBalancingStrategy

    hosts = [LLMHost(name="host1", url="https://llm1.example.com", weight=2.0)]
    async with DistributedLLMClient(hosts=hosts) as client:
        answer = await client.chat("Hello", model="llama3")

Seed 004's :class:`ProductionLLMService` (with :class:`LLMRequest` and
:class:`LLMResponse`) is built on that client; it loads with its first use.

Loads no model library: the hosts run the models.
"""

from typing import TYPE_CHECKING

from servicegrid._lazy import lazy_exports
from servicegrid.llm.chat import ChatCompletion, Messages
from servicegrid.llm.client import DistributedLLMClient
from servicegrid.llm.discovery import Discover
from servicegrid.llm.hosts import HostMetrics, LLMHost
from servicegrid.llm.latency import LatencyEwma
from servicegrid.llm.strategies import LoadBalancingStrategy
from servicegrid.llm.streaming import iter_sse_data

if TYPE_CHECKING:
    from servicegrid.llm.service import LLMRequest, LLMResponse, ProductionLLMService

__all__ = [
    "ChatCompletion",
    "Discover",
    "DistributedLLMClient",
    "HostMetrics",
    "LLMHost",
    "LLMRequest",
    "LLMResponse",
    "LatencyEwma",
    "LoadBalancingStrategy",
    "Messages",
    "ProductionLLMService",
    "iter_sse_data",
]

# The service pulls in the settings and the embedding service's clients: loaded on first use.
_SERVICE = dict.fromkeys(
    ("LLMRequest", "LLMResponse", "ProductionLLMService"), "servicegrid.llm.service"
)

__getattr__ = lazy_exports(__name__, _SERVICE)
