"""Seed 001, "Monitor Status": the status endpoint in Flask as the seed writes it, and in FastAPI.

Run with ``--check`` to call both endpoints in-process once and print what they return.
"""

import os
import sys

from fastapi import FastAPI
from flask import Flask, jsonify

from servicegrid import ResilientServiceClient
from servicegrid.status_routes import create_status_router

chroma_client = ResilientServiceClient(
    os.getenv("CHROMA_SERVER_URL", "http://chroma:6003"), service_name="Chroma Server"
)
filesystem_client = ResilientServiceClient(
    os.getenv("FILESYSTEM_SERVER_URL", "http://filesystem:6004"), service_name="Filesystem"
)

app = Flask(__name__)


@app.route("/v1/api/status/services", methods=["GET"])
def service_status():
    return {
        "chroma": chroma_client.get_status(),
        "filesystem": filesystem_client.get_status(),
    }


@app.route("/status/services")
def status():
    return jsonify({"chroma": chroma_client.get_status()})


# The same endpoint for a FastAPI app: every servicegrid client registers itself.
fastapi_app = FastAPI()
fastapi_app.include_router(create_status_router())


if __name__ == "__main__":
    if "--check" in sys.argv:
        from fastapi.testclient import TestClient

        print("flask:", app.test_client().get("/v1/api/status/services").get_json())
        print("fastapi:", TestClient(fastapi_app).get("/v1/api/status/services").json())
    else:
        app.run(port=int(os.getenv("PORT", "8080")))
