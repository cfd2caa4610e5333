"""An OTLP/HTTP trace receiver on 127.0.0.1: what the tracing test and benchmarks export to.

It speaks the part of OTLP/HTTP the SDK's exporter uses (POST /v1/traces with a protobuf
`ExportTraceServiceRequest`, keep-alive, optional gzip) and keeps every span it decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str] = field(default_factory=dict)


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = next(
            (
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            ),
            "",
        )
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(
                    Span(
                        service=service,
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        attributes={a.key: a.value.string_value for a in s.attributes},
                    )
                )
    return spans


class Receiver:
    """`async with Receiver() as r`: r.endpoint is the OTEL_EXPORTER_OTLP_ENDPOINT to set."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests = 0
        self._server: asyncio.Server | None = None
        self.endpoint = ""

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if method == "POST" and path == "/v1/traces":
                    self.spans.extend(decode(body))
                    self.requests += 1
                    status, reply = "200 OK", ExportTraceServiceResponse().SerializeToString()
                else:
                    status, reply = "404 Not Found", b""
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\n"
                    f"Content-Length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def main() -> int:
    """`python -m bench.otlp`: a receiver in its own process, so the benchmarks' exporting
    processes never share a core's GIL with it. Prints its endpoint, then on SIGTERM the
    spans and requests it received, as JSON lines."""
    import json
    import signal
    import sys

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with Receiver() as receiver:
            sys.stdout.write(json.dumps({"endpoint": receiver.endpoint}) + "\n")
            sys.stdout.flush()
            await stop.wait()
            tally = {"spans": len(receiver.spans), "requests": receiver.requests}
            sys.stdout.write(json.dumps(tally) + "\n")
            sys.stdout.flush()

    asyncio.run(run())
    return 0


@contextlib.asynccontextmanager
async def receiver_process() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """`python -m bench.otlp` as a child: yields its endpoint, and a dict that holds what it
    received once the block has ended."""
    import json
    import signal
    import sys

    from bench.processes import REPO

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.otlp", cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    tally: dict[str, int] = {}
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        yield json.loads(line)["endpoint"], tally
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        if out.strip():
            tally.update(json.loads(out.splitlines()[-1]))


if __name__ == "__main__":
    raise SystemExit(main())
