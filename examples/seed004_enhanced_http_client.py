"""Seed 004, "Enhanced HTTP Client": configure, use, check status."""

import asyncio
import os

from servicegrid import (
    CircuitBreakerConfig,
    ConnectionPoolConfig,
    EnhancedHTTPClient,
    RateLimitConfig,
    RetryConfig,
)

data = {"prompt": "hello"}


async def main():
    # Configure
    client = EnhancedHTTPClient(
        service_name="my_service",
        base_url=os.getenv("MY_SERVICE_URL", "https://api.example.com"),
        pool_config=ConnectionPoolConfig(max_connections=100),
        retry_config=RetryConfig(max_retries=3, jitter=True),
        circuit_breaker_config=CircuitBreakerConfig(failure_threshold=5),
        rate_limit_config=RateLimitConfig(requests_per_second=10),
    )

    # Use
    async with client:
        response = await client.post("/api/endpoint", json=data)
        print("response:", response.status_code, response.json())

    # Check status
    status = client.get_status()
    print(f"Error rate: {status['error_rate']}")
    print(f"Circuit breaker: {status['circuit_breaker']['state']}")


if __name__ == "__main__":
    asyncio.run(main())
