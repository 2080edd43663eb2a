"""The gateway's ``/v1/embeddings`` vs the embedding service's gRPC API directly vs Infinity.

Three servers answer the same loads on the same all-MiniLM-L6-v2 weights, on
the CPU of this machine, each a process of its own:

- the gateway (``servicegrid serve gateway``) in front of the embedding service
  (``servicegrid serve embedding``), called over HTTP/1.1 with keep-alive;
- that same embedding service, called directly with ``EmbeddingClient``;
- Infinity's own OpenAI-style REST server (``/embeddings``, see ``_infinity.py``);
- and, as the ceiling, the model alone: ``SentenceTransformer.encode`` at batch 32
  in this process, while the servers idle.

Both HTTP servers get the same client (aiohttp, one keep-alive connection per
caller) and every answer is parsed as JSON, as a caller would. The callers run
in this process, so the servers, the clients and the model share the same
cores; only one server is under load at a time. Every text is unique (the
service's cache never answers) and of the same length for every server. The
machine's speed drifts over minutes, so the loads run in interleaved rounds
(gRPC direct and gateway alternate which goes first) and each ratio is the
median of the per-round ratios; latencies are pooled over the rounds.

    .venv/bin/python bench/bench_gateway.py [--quick] [--no-infinity] [--profile OUT]

``--profile OUT`` also records the gateway process with py-spy (collapsed
stacks, ``--format raw``) under 64 single-text callers, after the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from tests.services.test_service_processes import wait_serving  # noqa: E402
from tests.support.faulty_server import free_port  # noqa: E402

import _infinity  # noqa: E402
from _common import logged_process, pct, table  # noqa: E402
from bench_embedding import BASE  # noqa: E402
from servicegrid.clients import EmbeddingClient, ServiceClientConfig  # noqa: E402
from servicegrid.models import (  # noqa: E402
    MINILM_NAME,
    SentenceTransformerEmbedder,
    resolve_model_path,
)
from servicegrid.proto import embedding_service_pb2  # noqa: E402

WORKLOADS = {"64 callers x 1 text": (64, 1), "4 callers x 32 texts": (4, 32)}
"""name: (concurrent callers, texts per request)"""
GOALS = {
    "64 callers x 1 text": {"grpc": ">= 0.9", "infinity": ">= 1.3"},
    "4 callers x 32 texts": {"grpc": ">= 0.9", "infinity": ">= 1.0"},
}
TARGETS = {"gateway": "gw", "grpc": "gr", "infinity": "if", "model": "md"}
"""target: a two-letter tag, so every target's texts have the same length"""
LABELS = {
    "gateway": "gateway `/v1/embeddings` (HTTP)",
    "grpc": "embedding service, gRPC direct",
    "infinity": "Infinity `/embeddings` (HTTP)",
    "model": "the model alone, in-process `encode` batch 32",
}
MODEL_BATCH = 32


@dataclass(frozen=True)
class Plan:
    """How long a run is: rounds, and the texts each workload sends per target per round."""

    rounds: int
    texts: dict[str, int]


FULL = Plan(rounds=5, texts={"64 callers x 1 text": 512, "4 callers x 32 texts": 1024})
QUICK = Plan(rounds=2, texts={"64 callers x 1 text": 192, "4 callers x 32 texts": 256})
WARM_UP_TEXTS = 128
START_TIMEOUT = 120.0
REQUEST_TIMEOUT = 120.0
PROFILE_SECONDS = 15

Call = Callable[[list[str]], Awaitable[None]]


def texts(tag: str, count: int) -> list[str]:
    """``count`` unique texts shaped as bench_embedding.py's corpus."""
    return [f"{BASE} ({tag} {i:05d})" for i in range(count)]


@dataclass
class Runs:
    """One target's figures at one workload: texts/s per round, latencies in ms pooled."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


async def load(call: Call, *, callers: int, per_request: int, corpus: list[str]) -> Runs:
    """Texts per second and per-request latencies of ``callers`` concurrent callers of
    ``call``, each sending ``per_request`` texts at a time until ``corpus`` is done."""
    pending = list(reversed(corpus))
    latencies: list[float] = []

    async def caller() -> None:
        while pending:
            chunk = [pending.pop() for _ in range(min(per_request, len(pending)))]
            started = time.perf_counter()
            await call(chunk)
            latencies.append(1000 * (time.perf_counter() - started))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return Runs([len(corpus) / (time.perf_counter() - started)], latencies)


def openai_call(session: aiohttp.ClientSession, url: str, model: str) -> Call:
    """One OpenAI-style embeddings POST per call; raises unless every text is answered."""

    async def call(chunk: list[str]) -> None:
        async with session.post(url, json={"model": model, "input": chunk}) as response:
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
            body: dict[str, Any] = await response.json()
        if len(body["data"]) != len(chunk):
            raise RuntimeError(f"{url} answered {len(body['data'])} of {len(chunk)} texts")

    return call


def grpc_call(client: EmbeddingClient) -> Call:
    """The RPC the gateway itself sends for each request (normalized, the default model)."""
    config = embedding_service_pb2.EmbeddingConfig(normalize=True)

    async def call(chunk: list[str]) -> None:
        response = await client.generate_embeddings(chunk, "", config)
        if len(response.embeddings) != len(chunk):
            raise RuntimeError(f"gRPC answered {len(response.embeddings)} of {len(chunk)} texts")

    return call


def in_process(embedder: SentenceTransformerEmbedder, corpus: list[str]) -> Runs:
    """Texts per second of the model alone on ``corpus``, at batch 32 (no latencies: no calls)."""
    started = time.perf_counter()
    embedder.encode(corpus, batch_size=MODEL_BATCH, normalize=True)
    return Runs([len(corpus) / (time.perf_counter() - started)])


async def measure(
    calls: dict[str, Call],
    embedder: SentenceTransformerEmbedder,
    *,
    rounds: int,
    sizes: dict[str, int],
) -> dict[str, dict[str, Runs]]:
    """Warm each target up, then ``rounds`` rounds of every workload on every target, the
    model alone last."""
    embedder.encode(texts("md warm-up", WARM_UP_TEXTS), batch_size=MODEL_BATCH)
    for target, call in calls.items():
        for callers, per_request in WORKLOADS.values():
            corpus = texts(f"{TARGETS[target]} warm-up {per_request:02d}", WARM_UP_TEXTS)
            await load(call, callers=min(callers, 16), per_request=per_request, corpus=corpus)
    runs = {name: {target: Runs() for target in [*calls, "model"]} for name in WORKLOADS}
    for r in range(rounds):
        order = list(calls)
        if r % 2 and {"gateway", "grpc"} <= set(order):
            i, j = order.index("gateway"), order.index("grpc")
            order[i], order[j] = order[j], order[i]
        for name, (callers, per_request) in WORKLOADS.items():
            for target in [*order, "model"]:
                corpus = texts(f"{TARGETS[target]} r{r} {per_request:02d}", sizes[name])
                if target == "model":
                    got = in_process(embedder, corpus)
                else:
                    got = await load(
                        calls[target], callers=callers, per_request=per_request, corpus=corpus
                    )
                runs[name][target].rates += got.rates
                runs[name][target].latencies += got.latencies
                print(
                    f"round {r + 1}/{rounds} {name:<20} {target:<8} {got.rates[0]:7.1f} texts/s",
                    file=sys.stderr,
                )
    return runs


async def profile_gateway(call: Call, pid: int, out: Path) -> None:
    """py-spy's collapsed stacks of the gateway under 64 single-text callers."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(PROFILE_SECONDS)]
    command += ["--format", "raw", "--rate", "200", "--nonblocking", "-o", str(out)]
    recorder = await asyncio.create_subprocess_exec(*command)
    corpus = texts("gw profile", 100_000)
    pending = list(corpus)

    async def caller() -> None:
        while recorder.returncode is None and pending:
            await call([pending.pop()])

    waiting = asyncio.ensure_future(recorder.wait())
    callers = [asyncio.ensure_future(caller()) for _ in range(64)]
    await waiting
    await asyncio.gather(*callers)
    print(f"py-spy: the gateway's collapsed stacks are in {out}", file=sys.stderr)


def wait_ready(url: str, child: subprocess.Popen[bytes]) -> None:
    give_up = time.monotonic() + START_TIMEOUT
    while time.monotonic() < give_up:
        if child.poll() is not None:
            raise RuntimeError(f"the gateway exited with {child.returncode} before serving")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(f"the gateway did not answer {url}/ready within {START_TIMEOUT:.0f} s")


@contextlib.contextmanager
def maybe_infinity(model_path: Path, *, wanted: bool) -> Iterator[str | None]:
    """Infinity's base URL, or None (saying why) when skipped or when it cannot run here."""
    if not wanted:
        yield None
        return
    try:
        _infinity.ensure_venv()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"Infinity skipped: its venv could not be built here ({exc})", file=sys.stderr)
        yield None
        return
    with _infinity.infinity_server(model_path, free_port()) as url:
        yield url


async def run(
    args: argparse.Namespace,
    embedder: SentenceTransformerEmbedder,
    service_port: int,
    gateway: str,
    gateway_pid: int,
    infinity: str | None,
) -> dict[str, dict[str, Runs]]:
    plan = QUICK if args.quick else FULL
    config = ServiceClientConfig(service_url=f"127.0.0.1:{service_port}", timeout=REQUEST_TIMEOUT)
    # Idle connections are dropped after 2 s, before the servers' own 5 s keep-alive
    # timeout, so no request is ever sent on a connection the server is closing.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=2)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with (
        EmbeddingClient(config=config, registry=None) as client,
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
    ):
        calls = {
            "gateway": openai_call(session, f"{gateway}/v1/embeddings", "all-MiniLM-L6-v2"),
            "grpc": grpc_call(client),
        }
        if infinity is not None:
            calls["infinity"] = openai_call(
                session, f"{infinity}/embeddings", _infinity.SERVED_NAME
            )
        runs = await measure(calls, embedder, rounds=plan.rounds, sizes=plan.texts)
        if args.profile is not None:
            await profile_gateway(calls["gateway"], gateway_pid, args.profile)
    return runs


def main(argv: list[str] | None = None) -> dict[str, dict[str, Runs]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--no-infinity", action="store_true", help="skip Infinity")
    parser.add_argument(
        "--profile", type=Path, metavar="OUT", help="py-spy the gateway into OUT afterwards"
    )
    args = parser.parse_args(argv)
    model_path = resolve_model_path(MINILM_NAME)
    service_port, gateway_port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    quiet = {**os.environ, "SERVICEGRID_LOG_LEVEL": "WARNING"}
    for name in ("SERVICEGRID_API_KEYS", "SERVICEGRID_RATE_LIMIT_RPS", "CONSUL_HOST", "ETCD_HOST"):
        quiet.pop(name, None)
    cli = [sys.executable, "-m", "servicegrid.cli", "serve"]
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        gateway_env = {
            **quiet,
            "EMBEDDING_SERVICE_URL": f"127.0.0.1:{service_port}",
            "RERANKING_SERVICE_URL": f"127.0.0.1:{free_port()}",
            "DOCLING_VLM_SERVICE_URL": f"127.0.0.1:{free_port()}",
            "DATABASE_URL": f"sqlite+aiosqlite:///{scratch}/gateway.db",
        }
        with (
            logged_process(
                [*cli, "embedding", "--host", "127.0.0.1", "--port", str(service_port)],
                {**quiet, "SERVICEGRID_DEVICE": "cpu"},
                "embedding service",
                prefix="bench-gateway",
            ),
            logged_process(
                [*cli, "gateway", "--host", "127.0.0.1", "--port", str(gateway_port)],
                gateway_env,
                "gateway",
                prefix="bench-gateway",
            ) as gateway_process,
            maybe_infinity(model_path, wanted=not args.no_infinity) as infinity,
        ):
            asyncio.run(wait_serving(service_port))
            wait_ready(gateway, gateway_process)
            embedder = SentenceTransformerEmbedder(model_path, name=MINILM_NAME)
            runs = asyncio.run(
                run(args, embedder, service_port, gateway, gateway_process.pid, infinity)
            )
    report(runs, quick=args.quick, infinity_skipped=infinity is None and not args.no_infinity)
    return runs


def report(runs: dict[str, dict[str, Runs]], *, quick: bool, infinity_skipped: bool) -> None:
    """A Markdown table per workload, ready for docs/benchmarks.md."""
    print(f"\n/v1/embeddings on all-MiniLM-L6-v2, CPU ({'--quick' if quick else 'full run'})\n")
    for name, by_target in runs.items():
        gateway = by_target["gateway"].rates
        rows: list[list[object]] = []
        for target, got in by_target.items():
            per_round = [a / b for a, b in zip(gateway, got.rates, strict=True)]
            rows.append(
                [
                    LABELS[target],
                    f"{statistics.median(got.rates):,.0f}",
                    f"{pct(got.latencies, 0.5):.1f}" if got.latencies else "",
                    f"{pct(got.latencies, 0.99):.1f}" if got.latencies else "",
                    f"{statistics.median(per_round):.2f}",
                    GOALS[name].get(target, ""),
                ]
            )
        if infinity_skipped:
            rows.append(
                [LABELS["infinity"], "skipped: no venv", "", "", "", GOALS[name]["infinity"]]
            )
        headers = [name, "texts/s", "p50 ms", "p99 ms", "gateway ÷ this", "goal"]
        print(table(headers, rows))
        print()


if __name__ == "__main__":
    main()
