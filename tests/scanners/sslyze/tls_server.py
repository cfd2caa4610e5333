"""A real TLS server on 127.0.0.1 for sslyze to scan, with a fresh self-signed certificate.

Threads, not the test's event loop: sslyze opens hundreds of connections (most of them
handshakes the server refuses), and the in-process jetscan stack shares that loop.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socketserver
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(
    directory: Path,
    dns_names: tuple[str, ...],
    ips: tuple[str, ...],
    subject: x509.Name | None = None,
) -> ssl.SSLContext:
    """A server context with a new EC P-256 certificate for these SANs, valid for 30 days."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jetscan test server")])
    now = datetime.now(UTC)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    write_pem(cert, key, cert_path, key_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def write_pem(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path
) -> None:
    """The certificate and its private key as PEM files (the key readable by its owner)."""
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


@contextlib.contextmanager
def serving(context: ssl.SSLContext) -> Iterator[int]:
    """Serve TLS on a free port of 127.0.0.1 until the block ends; yields the port."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            # Refused handshakes are the point of a TLS scan: nothing here is an error.
            with (
                contextlib.suppress(OSError),
                context.wrap_socket(self.request, server_side=True) as tls,
            ):
                tls.settimeout(5)
                tls.recv(1024)
                tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
