"""Health routes for the roles that have no web server of their own (all but the edge), so a
cluster can probe a handler pod: `JETSCAN_HEALTH_ADDR=0.0.0.0:8081` with `jetscan run ROLE`.

- `GET /healthz`: 200 while the process's event loop answers (liveness).
- `GET /readyz`: 200 while every role of the process is serving, 503 while one waits out a
  crash's backoff (readiness). Handlers take their work from NATS, not from a Service, so
  readiness gates rollouts; the edge's gRPC health says whether the pipeline serves.
- `GET /metrics`: the process's Prometheus metrics (`edge/metrics.py`, `handlers/metrics.py`).
  `jetscan up` serves these routes on `JETSCAN_METRICS_ADDR`.

A few lines of asyncio rather than a web framework: three fixed routes, answered and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os

from contracts import VERSION
from contracts.settings import Address

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT = 5.0


def answer(path: str, roles: list[str], up: set[str]) -> tuple[int, dict[str, object]]:
    """The status code and JSON body for a GET of `path`."""
    if path == "/healthz":
        return 200, {"status": "ok", "version": VERSION}
    if path == "/readyz":
        down = [r for r in roles if r not in up]
        return (503 if down else 200), {"ready": not down, "down": down}
    return 404, {"error": f"no route {path}"}


class ListenError(Exception):
    """The health address cannot be listened on (in use, not this host's)."""


async def listen(addr: Address, roles: list[str], up: set[str], variable: str) -> asyncio.Server:
    """Start answering on `addr` (the setting `variable`); ListenError when it cannot."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT)
            method, _, rest = head.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            content_type = "application/json"
            if method == "GET" and path == "/metrics":
                import prometheus_client  # only when scraped: `jetscan` CLI commands start fast

                code, content_type = 200, prometheus_client.CONTENT_TYPE_PLAIN_0_0_4
                payload = prometheus_client.generate_latest()
            else:
                code, body = answer(path, roles, up) if method == "GET" else (405, {})
                payload = json.dumps(body).encode()
            phrase = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                code, "Service Unavailable"
            )
            writer.write(
                f"HTTP/1.1 {code} {phrase}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        server = await asyncio.start_server(handle, addr.host, addr.port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenError(f"{variable}: cannot listen on {addr}: {reason}") from exc
    log.info("health routes on http://%s/healthz, /readyz and /metrics", addr)
    return server


async def serve(server: asyncio.Server, stop: asyncio.Event) -> None:
    """Answer until `stop` is set."""
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
