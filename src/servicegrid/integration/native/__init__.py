"""Native workflow steps: actions of servicegrid's own gRPC services, run through typed clients.

A workflow step that names service ``embedding``, ``reranking`` or ``documents`` runs here
instead of as an HTTP call to a registered service.

.. code-block:: python

    runner = NativeStepRunner()                        # endpoints from settings
    out = await runner.run("embedding", "generate", {"texts": ["a text"]})
    out["embeddings"][0][:3], out["model"], out["dimensions"]
    await runner.aclose()

Input is checked against the action's JSON Schema first (``ValidationError`` whose
``validation_errors`` are ``{"field": "texts[0]", "message": ...}`` entries); an unknown
service or action raises ``ResourceNotFoundError``. Errors from the clients (unavailable,
deadline, the service's own validation) pass through unchanged.

Each action is declared once, in its service's module (:mod:`.embedding`, :mod:`.reranking`,
:mod:`.documents`): schemas, handler and any further input check together;
:mod:`.catalogue` lists them and :mod:`.runner` holds the clients.
"""

from servicegrid.integration.native.action import NativeAction
from servicegrid.integration.native.catalogue import (
    NATIVE_SERVICES,
    native_action,
    native_actions,
    validate_native_input,
)
from servicegrid.integration.native.runner import NativeStepRunner

__all__ = [
    "NATIVE_SERVICES",
    "NativeAction",
    "NativeStepRunner",
    "native_action",
    "native_actions",
    "validate_native_input",
]
