"""Seed 001, "Quick Start (Copy-Paste)": steps 1-3 as the seed writes them."""

import logging
import os

import requests

from servicegrid import ResilientServiceClient, ServiceUnavailable

logging.basicConfig(level=logging.INFO, format="%(message)s")
logger = logging.getLogger(__name__)
data = {"query": "circuit breakers", "n_results": 3}


def fallback_search():
    return {"results": [], "source": "fallback"}


# ### 1. Import and Initialize

chroma_client = ResilientServiceClient(
    os.getenv("CHROMA_SERVER_URL", "http://chroma:6003"), service_name="Chroma Server"
)


# ### 2. Use in Code


def search():
    try:
        response = chroma_client.post("/query", json=data)
        results = response.json()
    except ServiceUnavailable:
        logger.error("Chroma is down")
        results = fallback_search()
    except requests.RequestException as e:
        logger.error(f"Search failed: {e}")
        return {"error": "Service unavailable"}, 503
    return results


# ### 3. Monitor Status


def service_status():
    return {
        "chroma": chroma_client.get_status(),
    }


if __name__ == "__main__":
    print("search:", search())
    print("status:", service_status())
