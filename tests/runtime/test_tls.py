"""TLS and mutual TLS with certificates made by the openssl command line for each test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from servicegrid.proto import common_pb2, embedding_service_pb2_grpc
from servicegrid.runtime import ServerTLS
from tests.runtime.conftest import build

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

EC_KEY = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"


def openssl(command: str, cwd: Path) -> None:
    args = ["openssl", *command.split()]
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(tmp: Path) -> Path:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    openssl(f"req -x509 {EC_KEY} -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca", tmp)
    (tmp / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (tmp / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl(f"req {EC_KEY} -keyout {name}.key -out {name}.csr -subj /CN={name}", tmp)
        openssl(
            f"x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
            f" -out {name}.pem -days 1 -extfile {name}.ext",
            tmp,
        )
    return tmp


def channel(port: int, pki: Path, *, client_cert: bool) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes() if client_cert else None,
        certificate_chain=(pki / "client.pem").read_bytes() if client_cert else None,
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options)


async def test_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    s = await build(tls=ServerTLS(pki / "server.pem", pki / "server.key"))
    await s.running.server.start()
    try:
        async with channel(s.running.port, pki, client_cert=False) as secure:
            stub = embedding_service_pb2_grpc.EmbeddingServiceStub(secure)
            reply = await stub.GetHealth(common_pb2.HealthRequest(), timeout=10)
            assert reply.status == "healthy"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await s.stub.GetHealth(common_pb2.HealthRequest(), timeout=5)  # plaintext
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await s.channel.close()
        await s.running.server.stop(None)


async def test_mutual_tls_requires_a_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls = ServerTLS(str(pki / "server.pem"), str(pki / "server.key"), client_ca=pki / "ca.pem")
    s = await build(tls=tls)
    await s.running.server.start()
    try:
        async with channel(s.running.port, pki, client_cert=True) as secure:
            stub = embedding_service_pb2_grpc.EmbeddingServiceStub(secure)
            reply = await stub.GetHealth(common_pb2.HealthRequest(), timeout=10)
            assert reply.status == "healthy"
        async with channel(s.running.port, pki, client_cert=False) as anonymous:
            stub = embedding_service_pb2_grpc.EmbeddingServiceStub(anonymous)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetHealth(common_pb2.HealthRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await s.channel.close()
        await s.running.server.stop(None)
