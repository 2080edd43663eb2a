"""``ServiceIntegrationClient``: seed 003's client for the integration service's REST API.

.. code-block:: python

    async with ServiceIntegrationClient(base_url="http://localhost:8005/api") as client:
        service = await client.register_service(name="text-extraction", endpoint=url, actions=[...])
        workflow = await client.create_workflow(name="document-sentiment", steps=[...])
        result = await client.execute_workflow(workflow_id=workflow["id"], input_data={...})
        print(result["sentiment"])            # a missing key falls back to the output

        workflows = client.get_workflows()     # read methods work without await ...
        for item in workflows["items"]: ...
        workflow = await client.get_workflow(workflow_id=workflow["id"])   # ... and with it

    health = asyncio.run(client.get_integration_health())   # a read is a coroutine too

Write methods (create, update, delete, execute, cancel, resume) are ``async def``:
they check and send nothing until awaited. Read methods (``get_*``) return a
:class:`DeferredRead`, which the seed uses both ways:

* Awaited, or handed to ``asyncio.run``, ``asyncio.create_task``,
  ``asyncio.gather`` or ``asyncio.wait_for`` (it is a real
  :class:`collections.abc.Coroutine`), it sends the request on the event loop
  and returns a plain ``dict`` (a :class:`WorkflowExecution` for an execution).
* Used directly as a mapping (``read["items"]``, ``.get``, ``in``, iteration,
  ``len``, ``==`` against a dict), it sends the request *synchronously*, once,
  on the first such use, and then behaves as that dict. ``read.result()`` does
  the same and returns the dict itself. That request blocks the calling thread
  (an event loop too, if called from a coroutine), so code that runs on a loop
  should ``await``; it must never be used against a server served by the same loop.

Both paths go through the same policies: one circuit breaker for the whole
client, and a retry per kind of operation (:data:`INTEGRATION_RETRY_POLICIES`):

=========  =======  ==========  =========
operation  retries  base delay  max delay
=========  =======  ==========  =========
create     3        0.5 s       4 s
update     3        0.5 s       4 s
delete     2        1 s         4 s
read       2        0.5 s       2 s
=========  =======  ==========  =========

``retries`` come after the first attempt, so a create makes at most 4
attempts. What is retried is what the error table calls retryable
(:func:`servicegrid.errors.is_retryable`: connection errors, timeouts,
502/503/504, 429 after its ``Retry-After``, 500), except that a create, the one
kind of operation that is not idempotent (:attr:`OperationType.idempotent`), is
not sent again after the service failed while processing it (a 500): it may
have taken effect. When the retries run out the call raises
:class:`MaxRetriesExceededError` (``attempts``, ``last_error``). Executing a
workflow or a service action counts as a create. Every POST sends one
``Idempotency-Key`` per call, the same on every retry, so a retried execute
cannot start two executions (the service honours the key there). While the
breaker is open, calls fail at once with ``ServiceUnavailableError``
(``service_name == "service-integration"``) without reaching the service.
Backoff and polling sleep through the injected ``clock``.

Error answers become typed errors: 422 → :class:`ValidationError` whose
``validation_errors`` are ``[{"field": "actions.0.name", "message": ...}]``,
404 → :class:`ResourceNotFoundError` (``resource_type``, ``resource_id``),
409 → :class:`ConflictError`, 503 → :class:`ServiceUnavailableError`.

:class:`ServiceIntegrationClientSync` has the same methods, all synchronous: each
runs the async client's method from the calling thread, without an event loop.

The modules: ``policies`` (operation types and their retry policies),
``requests`` (each REST call, no I/O), ``answers`` (replies to answers or typed
errors, no I/O), ``connection`` (configuration, breaker, sending), ``deferred``
(:class:`DeferredRead`), ``async_client`` and ``sync_client``.
"""

from servicegrid.clients.integration.answers import TERMINAL_EXECUTION_STATUSES, WorkflowExecution
from servicegrid.clients.integration.async_client import ServiceIntegrationClient
from servicegrid.clients.integration.connection import DEFAULT_BASE_URL
from servicegrid.clients.integration.deferred import DeferredRead
from servicegrid.clients.integration.policies import (
    INTEGRATION_RETRY_POLICIES,
    OperationRetryPolicy,
    OperationType,
)
from servicegrid.clients.integration.sync_client import ServiceIntegrationClientSync

__all__ = [
    "DEFAULT_BASE_URL",
    "INTEGRATION_RETRY_POLICIES",
    "TERMINAL_EXECUTION_STATUSES",
    "DeferredRead",
    "OperationRetryPolicy",
    "OperationType",
    "ServiceIntegrationClient",
    "ServiceIntegrationClientSync",
    "WorkflowExecution",
]
