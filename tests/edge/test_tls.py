"""The edge over TLS: the CLI and a grpcio client verify it against JETSCAN_TLS_CA."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import ssl
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from contracts.gen.jetscan import v1
from contracts.settings import Address, Settings
from tests.conftest import Stack, free_port, run_jetscan
from tests.scanners.sslyze.tls_server import write_pem
from workers.roles import supervise
from workers.stack import wait_listening

pytestmark = pytest.mark.slow


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def make_ca(folder: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def make_server_cert(
    folder: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("jetscan edge"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = folder / "edge.crt", folder / "edge.key"
    write_pem(cert, key, cert_path, key_path)
    return cert_path, key_path


class TlsEdge:
    def __init__(self, settings: Settings, ca: Path, wrong_ca: Path) -> None:
        self.settings = settings
        self.ca = ca
        self.wrong_ca = wrong_ca


@pytest.fixture(scope="module")
async def tls_edge(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TlsEdge]:
    """A second edge, serving TLS, beside the session stack's roles."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca = make_ca(folder, "ca")
    make_ca(folder, "wrong")
    cert, key = make_server_cert(folder, ca_key, ca)
    settings = msgspec.structs.replace(
        stack.settings,
        grpc_addr=Address("127.0.0.1", free_port()),
        http_addr=Address("127.0.0.1", free_port()),
        tls_cert=str(cert),
        tls_key=str(key),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervise(settings, ["edge"], stop))
    try:
        await wait_listening(settings.grpc_addr, settings.http_addr, timeout=30)
        yield TlsEdge(settings, folder / "ca.crt", folder / "wrong.crt")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _cli_env(edge: TlsEdge, stack: Stack, ca: Path | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_GRPC_ADDR": str(edge.settings.grpc_addr),
        "JETSCAN_TOKEN": stack.admin_token,
    }
    if ca is not None:
        env["JETSCAN_TLS_CA"] = str(ca)
    return env


async def test_the_cli_talks_to_the_edge_over_tls(tls_edge: TlsEdge, stack: Stack) -> None:
    code, out, err = await run_jetscan(_cli_env(tls_edge, stack, tls_edge.ca), "scan", "list")
    assert code == 0, err
    assert out.startswith("ID")


async def test_the_cli_refuses_an_edge_its_ca_did_not_sign(tls_edge: TlsEdge, stack: Stack) -> None:
    env = _cli_env(tls_edge, stack, tls_edge.wrong_ca)
    code, out, err = await run_jetscan(env, "scan", "list")
    assert (code, out) == (1, "")
    assert "TLS: CERTIFICATE_VERIFY_FAILED" in err and err.count("\n") == 1


def _grpcio_list_scans(edge: TlsEdge, token: str, ca: Path) -> v1.ListScansResponse:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    with grpc.secure_channel(str(edge.settings.grpc_addr), credentials) as channel:
        call = channel.unary_unary(
            "/jetscan.v1.ScanService/ListScans",
            request_serializer=bytes,
            response_deserializer=v1.ListScansResponse.parse,
        )
        reply: v1.ListScansResponse = call(
            v1.ListScansRequest(page_size=5),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=15,
        )
        return reply


async def test_a_grpcio_client_verifies_the_edge(tls_edge: TlsEdge, stack: Stack) -> None:
    reply = await asyncio.to_thread(_grpcio_list_scans, tls_edge, stack.admin_token, tls_edge.ca)
    assert isinstance(reply, v1.ListScansResponse)
    with pytest.raises(grpc.RpcError) as refused:
        await asyncio.to_thread(_grpcio_list_scans, tls_edge, stack.admin_token, tls_edge.wrong_ca)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def _get(url: str, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(url, context=context, timeout=10) as reply:  # noqa: S310
        return int(reply.status)


async def test_http_is_served_over_tls(tls_edge: TlsEdge) -> None:
    url = f"https://{tls_edge.settings.http_addr}/healthz"
    assert await asyncio.to_thread(_get, url, tls_edge.ca) == 200
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        await asyncio.to_thread(_get, url, tls_edge.wrong_ca)
