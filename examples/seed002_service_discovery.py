"""Seed 002's service discovery: find the User, Question and API-gateway services.

Backends come from the environment: ``CONSUL_HOST``, ``ETCD_HOST``, ``USE_ISTIO_DNS``;
with none set, from ``USER_SERVICE_URL`` and friends (or the local defaults).

    CONSUL_HOST=consul.internal python examples/seed002_service_discovery.py
"""

import asyncio

from servicegrid import discover_all_async, discover_service, discover_service_async
from servicegrid.discovery import discovery_metadata_async


async def main() -> None:
    # seed 002, as written
    url = await discover_service_async("USER_SERVICE")
    print(f"USER_SERVICE: {url}")

    target = await discover_service_async("USER_SERVICE", protocol="grpc")
    print(f"USER_SERVICE (gRPC): {target}")
    print(f"QUESTION_SERVICE: {await discover_service_async('QUESTION_SERVICE')}")
    print(f"api-gateway instances: {await discover_all_async('api-gateway')}")
    print(f"metadata: {await discovery_metadata_async('USER_SERVICE')}")


if __name__ == "__main__":
    asyncio.run(main())
    print(f"sync: {discover_service('USER_SERVICE')}")
