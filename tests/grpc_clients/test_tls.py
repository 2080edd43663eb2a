"""TLS and mutual TLS, end to end, with a throwaway self-signed certificate from ``openssl``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from servicegrid.clients.embedding import EmbeddingClient
from servicegrid.clients.grpc_base import ServiceClientConfig
from servicegrid.clients.health import HealthChecker
from servicegrid.errors import ServiceError
from tests.grpc_clients.servers import GrpcTestServer

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@dataclass
class Pem:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Pem:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Pem(cert, key)


async def _serve(pem: Pem, *, mutual: bool) -> GrpcTestServer:
    credentials = grpc.ssl_server_credentials(
        [(pem.key.read_bytes(), pem.cert.read_bytes())],
        root_certificates=pem.cert.read_bytes() if mutual else None,
        require_client_auth=mutual,
    )
    server = GrpcTestServer(credentials=credentials)
    await server.start()
    return server


@pytest.fixture
async def tls_server(pem: Pem) -> AsyncIterator[GrpcTestServer]:
    server = await _serve(pem, mutual=False)
    yield server
    await server.stop()


@pytest.fixture
async def mtls_server(pem: Pem) -> AsyncIterator[GrpcTestServer]:
    server = await _serve(pem, mutual=True)
    yield server
    await server.stop()


async def test_tls_client_and_health_checker(tls_server: GrpcTestServer, pem: Pem) -> None:
    config = ServiceClientConfig(tls_server.target, use_tls=True, tls_ca_path=str(pem.cert))
    async with EmbeddingClient(config=config, registry=None) as client:
        response = await client.generate_embeddings(["secure"])
        assert len(response.embeddings) == 1

    checker = HealthChecker({"tls": tls_server.target}, use_tls=True, tls_ca_path=str(pem.cert))
    assert (await checker.check_all_services())["tls"].status == "healthy"
    plaintext = HealthChecker({"tls": tls_server.target})
    assert (await plaintext.check_all_services())["tls"].status == "unhealthy"


async def test_mutual_tls_needs_the_client_certificate(
    mtls_server: GrpcTestServer, pem: Pem
) -> None:
    with_cert = ServiceClientConfig(
        mtls_server.target,
        retry_attempts=1,
        use_tls=True,
        tls_ca_path=str(pem.cert),
        tls_cert_path=str(pem.cert),
        tls_key_path=str(pem.key),
    )
    async with EmbeddingClient(config=with_cert, registry=None) as client:
        assert (await client.list_models()).models

    without_cert = ServiceClientConfig(
        mtls_server.target, retry_attempts=1, use_tls=True, tls_ca_path=str(pem.cert)
    )
    async with EmbeddingClient(config=without_cert, registry=None) as client:
        with pytest.raises(ServiceError) as caught:
            await client.list_models()
        assert isinstance(caught.value, grpc.RpcError)
