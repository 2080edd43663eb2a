"""The upstream clients the gateway calls: :class:`~servicegrid.clients.model_clients.ModelClients`
under the gateway's name, and the LLM hosts it reads from settings."""

from servicegrid.clients.model_clients import ModelClients as GatewayClients
from servicegrid.llm.configured import llm_hosts

__all__ = ["GatewayClients", "llm_hosts"]
