"""Every file in examples/ runs, as a user would run it, against a real local server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.faulty_server import FaultyServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def run_example(name: str, server_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CHROMA_SERVER_URL": server_url,
        "FILESYSTEM_SERVER_URL": server_url,
        "MY_SERVICE_URL": server_url,
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES} == {
        "seed001_quick_start.py",
        "seed001_patterns.py",
        "seed001_status_endpoint.py",
        "seed004_enhanced_http_client.py",
    }


def test_quick_start_against_a_healthy_service(server: FaultyServer) -> None:
    done = run_example("seed001_quick_start.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "search: {'ok': True, 'path': '/query', 'method': 'POST'" in done.stdout
    assert "'state': 'closed'" in done.stdout
    assert "[Chroma Server] ✓ POST /query succeeded" in done.stderr


def test_quick_start_when_the_service_is_down(server: FaultyServer) -> None:
    server.set(mode="fail", status=503, retry_after=None)
    done = run_example("seed001_quick_start.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "search: ({'error': 'Service unavailable'}, 503)" in done.stdout
    assert "[Chroma Server] HTTP 503 on attempt 1/3, retrying in 1s..." in done.stderr
    assert "Search failed:" in done.stderr


def test_patterns(server: FaultyServer) -> None:
    done = run_example("seed001_patterns.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "fail closed: ({'charged': True}, 200)" in done.stdout
    assert "best effort: continued" in done.stdout
    assert "presets: ((3, 15.0), (2, 5.0), (3, 30.0, 90.0))" in done.stdout


@pytest.mark.parametrize("mode", ["ok", "fail"])
def test_status_endpoint(server: FaultyServer, mode: str) -> None:
    server.set(mode=mode)
    done = run_example("seed001_status_endpoint.py", server.url, "--check")
    assert done.returncode == 0, done.stderr
    assert "flask: {'chroma': {" in done.stdout
    assert "'service': 'Chroma Server'" in done.stdout
    assert "fastapi: {'Chroma Server': {" in done.stdout


def test_enhanced_http_client(server: FaultyServer) -> None:
    done = run_example("seed004_enhanced_http_client.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "response: 200 {'ok': True, 'path': '/api/endpoint'" in done.stdout
    assert "Error rate: 0.0" in done.stdout
    assert "Circuit breaker: closed" in done.stdout
