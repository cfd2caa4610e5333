"""TLS for the edge: the server's context from JETSCAN_TLS_CERT/KEY, the CLI's from
JETSCAN_TLS_CA. gRPC over TLS needs ALPN `h2`; HTTP/1.1 (uvicorn) is given the files."""

from __future__ import annotations

import ssl


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    return context


def client_context(ca: str) -> ssl.SSLContext:
    """Verify the edge's certificate against `ca` only (not the system's roots) and its
    name against the address dialled."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    return context
