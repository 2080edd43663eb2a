"""Seed 002's discovery example, run as a user would: against the Consul stand-in, then env."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.consul_standin import ConsulStandIn

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "seed002_service_discovery.py"


@pytest.fixture
def consul() -> Iterator[ConsulStandIn]:
    with ConsulStandIn() as running:
        yield running


def run(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL", "ETCD", "USER_"))}
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_example_finds_services_registered_in_consul(consul: ConsulStandIn) -> None:
    consul.add_entry("user-service", port=8001, address="10.1.0.7")
    consul.add_entry("user-service-grpc", port=50061, address="10.1.0.7")
    consul.add_entry("api-gateway", port=8003, address="10.1.0.8", service_id="gw-1")
    consul.add_entry("api-gateway", port=8003, address="10.1.0.9", service_id="gw-2")
    done = run(CONSUL_HOST="127.0.0.1", CONSUL_PORT=str(consul.port))
    assert done.returncode == 0, done.stderr
    assert "USER_SERVICE: http://10.1.0.7:8001" in done.stdout
    assert "USER_SERVICE (gRPC): 10.1.0.7:50061" in done.stdout
    # Consul does not know it: the environment's default answers
    assert "QUESTION_SERVICE: http://localhost:8002" in done.stdout
    assert "api-gateway instances: ['http://10.1.0.8:8003', 'http://10.1.0.9:8003']" in (
        done.stdout
    )
    assert "'backend': 'consul'" in done.stdout
    assert "sync: http://10.1.0.7:8001" in done.stdout


def test_the_example_falls_back_to_the_environment() -> None:
    done = run(
        USER_SERVICE_URL="http://users.internal:8001",
        USER_SERVICE_GRPC_TARGET="users.internal:50061",
    )
    assert done.returncode == 0, done.stderr
    assert "USER_SERVICE: http://users.internal:8001" in done.stdout
    assert "USER_SERVICE (gRPC): users.internal:50061" in done.stdout
    assert "'backend': 'env'" in done.stdout
