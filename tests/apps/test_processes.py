"""Seed 002's services as processes: the seed's client usage and its example, over REST and gRPC,
with discovery through the environment and through the Consul stand-in; the change feed across a
restart; the proxy's refusals (issue 16, acceptance 1, 2 and 4)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servicegrid.discovery import Discovery, EnvBackend
from servicegrid.settings import load_settings
from tests.support.app_processes import AppProcesses
from tests.support.consul_standin import ConsulStandIn

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "seed002_service_integration.py"

SEED_USAGE = """
import asyncio
from servicegrid import UserServiceClient, UserServiceGRPCClient

async def main():
    client = UserServiceClient()
    user_data = await client.get_user("user-123")
    await client.aclose()
    print("REST", user_data["id"], user_data["username"])

    client = UserServiceGRPCClient()
    await client.connect()
    user_data = await client.get_user("user-123")
    await client.aclose()
    print("gRPC", user_data["id"], user_data["username"])

asyncio.run(main())
"""


def run_python(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith(("_URL", "_GRPC_TARGET"))}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def check_seed_usage(env: dict[str, str]) -> None:
    done = run_python(["-c", SEED_USAGE], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["REST user-123 alice", "gRPC user-123 alice"]


def check_example(env: dict[str, str]) -> str:
    done = run_python([str(EXAMPLE)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for line in (
        "user: alice (alice@example.com)",
        "proxied GET /users/user-123: 200 user-123",
        "question-service health: healthy",
        "rate limit: allowed=True",
        "not found, as expected:",
        "refused, as expected:",
        "proxied over gRPC: 200",
    ):
        assert line in out, out
    return out


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcesses]:
    with AppProcesses(tmp_path_factory.mktemp("apps")) as running:
        yield running


def test_the_seed_usage_runs_as_written_through_the_environment(apps: AppProcesses) -> None:
    check_seed_usage(apps.env)


def test_the_example_runs_through_the_environment(apps: AppProcesses) -> None:
    out = check_example(apps.env)
    assert f"USER_SERVICE: {apps.url('users')} (gRPC {apps.target('users')})" in out


def test_the_proxy_refuses_urls_and_unknown_services_and_forwards(apps: AppProcesses) -> None:
    with httpx.Client(base_url=apps.url("api-gateway"), timeout=30) as client:
        for service in ("http://127.0.0.1:1/", "127.0.0.1:8001", "no-such-service", "a/b"):
            answer = client.post("/proxy", json={"service": service, "path": "/users"})
            assert answer.status_code == 422, (service, answer.text)
            assert "service" in answer.text
        answer = client.post(
            "/proxy", json={"service": "question-service", "path": "/questions/q-001"}
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == "q-001"
    assert answer.headers["x-upstream-service"] == "question-service"


def test_the_change_feed_replays_every_change_in_order_after_a_restart(
    apps: AppProcesses,
) -> None:
    from servicegrid import QuestionServiceClient

    async def write() -> list[tuple[str, str]]:
        client = QuestionServiceClient(apps.url("questions"))
        try:
            made = await client.create_question("user-123", "Does the feed survive a restart?")
            await client.update_question(made["id"], body="It should.")
            other = await client.create_question("user-456", "And a second question?")
            await client.delete_question(made["id"])
            return [
                ("created", made["id"]),
                ("updated", made["id"]),
                ("created", other["id"]),
                ("deleted", made["id"]),
            ]
        finally:
            await client.aclose()

    async def read_all() -> list[dict[str, object]]:
        client = QuestionServiceClient(apps.url("questions"))
        changes: list[dict[str, object]] = []
        after = 0
        try:
            while True:
                page = await client.list_changes(after=after, limit=3)
                changes += page["changes"]
                after = page["next_after"]
                if not page["has_more"]:
                    return changes
        finally:
            await client.aclose()

    written = asyncio.run(write())
    before = asyncio.run(read_all())
    apps.restart("questions")
    after = asyncio.run(read_all())
    assert after == before
    seqs = [change["seq"] for change in after]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    ours = [
        (change["kind"], change["question"]["id"])  # type: ignore[index]
        for change in after
        if change["question"]["id"] in {qid for _, qid in written}  # type: ignore[index]
    ]
    assert ours == written


def wait_registered(consul: ConsulStandIn, names: list[str]) -> None:
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=consul.url, timeout=5) as client:
        for name in names:
            while not client.get(f"/v1/health/service/{name}", params={"passing": ""}).json():
                assert time.monotonic() < deadline, f"{name} never registered in Consul"
                time.sleep(0.1)


def test_the_seed_usage_and_the_example_run_through_consul(tmp_path: Path) -> None:
    with ConsulStandIn() as consul, AppProcesses(tmp_path, consul=consul) as apps:
        names = ["user-service", "question-service", "api-gateway"]
        wait_registered(consul, names + [f"{name}-grpc" for name in names])
        check_seed_usage(apps.env)
        out = check_example(apps.env)
    assert f"USER_SERVICE: {apps.url('users')} (gRPC {apps.target('users')})" in out
    assert "question-service health: healthy via consul" in out


def test_the_environment_backend_alone_knows_the_default_ports() -> None:
    discovery = Discovery([EnvBackend(load_settings())])

    async def locate() -> tuple[str, str]:
        answer = await discovery.resolve("USER_SERVICE")
        grpc = await discovery.resolve("USER_SERVICE", "grpc")
        await discovery.aclose()
        return answer.locators[0], grpc.locators[0]

    assert asyncio.run(locate()) == ("http://localhost:8001", "localhost:50061")
