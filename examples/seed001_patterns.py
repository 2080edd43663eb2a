"""Seed 001, "Common Patterns" and "Configuration Presets"."""

import logging
import os

import requests

from servicegrid import ResilientServiceClient, ServiceUnavailable

logging.basicConfig(level=logging.INFO, format="%(message)s")
logger = logging.getLogger(__name__)
url = os.getenv("CHROMA_SERVER_URL", "http://chroma:6003")
data = {"query": "circuit breakers"}


def fallback_search():
    return {"results": [], "source": "fallback"}


chroma_client = ResilientServiceClient(url, service_name="Chroma Server")
billing_client = ResilientServiceClient(url, service_name="Billing")
git_client = ResilientServiceClient(url, service_name="Git")


def fail_open():
    # ### Fail Open (Use Fallback)
    try:
        results = chroma_client.post("/query", json=data)
    except (ServiceUnavailable, requests.RequestException):
        results = fallback_search()
    return results


def fail_closed():
    # ### Fail Closed (Return Error)
    try:
        billing_client.post("/charge", json=data)
    except (ServiceUnavailable, requests.RequestException) as e:
        return {"error": "Cannot process"}, 503
    return {"charged": True}, 200


def best_effort():
    # ### Best Effort (Log and Continue)
    try:
        git_client.post("/snapshot", json=data)
    except (ServiceUnavailable, requests.RequestException) as e:
        logger.warning(f"Snapshot failed: {e}")
    # Continue regardless
    return "continued"


def presets():
    # ### For Slow Operations (Vector Search, File I/O)
    client = ResilientServiceClient(url, max_retries=3, timeout=15)
    slow = (client.max_retries, client.timeout)
    # ### For Fast Operations (Billing, Auth)
    client = ResilientServiceClient(url, max_retries=2, timeout=5)
    fast = (client.max_retries, client.timeout)
    # ### For Complex Operations (Git)
    client = ResilientServiceClient(url, max_retries=3, timeout=30, recovery_timeout=90)
    complex_ = (client.max_retries, client.timeout, client.circuit_breaker.recovery_timeout)
    return slow, fast, complex_


if __name__ == "__main__":
    print("fail open:", fail_open())
    print("fail closed:", fail_closed())
    print("best effort:", best_effort())
    print("presets:", presets())
