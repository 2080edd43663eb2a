"""The gateway: OpenAI-, Cohere- and TEI-compatible REST over the gRPC model services.

.. code-block:: python

    from servicegrid.gateway import create_app
    app = create_app(load_settings())   # uvicorn app, port 8000

CPU only: it imports no model library (torch, transformers, onnxruntime, docling).
"""

from servicegrid.gateway.app import create_app
from servicegrid.gateway.clients import GatewayClients

__all__ = ["GatewayClients", "create_app"]
