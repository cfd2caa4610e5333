"""The edge's Prometheus metrics: gRPC and HTTP requests, console viewers. Served at `/metrics`
on the role's health address or `jetscan up`'s metrics address, never on the public web
address. The handlers' metrics are in `handlers/metrics.py`; conventions are the same.

StartScan is the hot path: a request's labels are bound once per (method, code) pair and
cached, so an RPC costs a clock read at each end, two dict lookups, `inc` and `observe`.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from grpclib.events import RecvRequest, SendTrailingMetadata
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from contracts import tracing

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

GRPC_REQUESTS = Counter(
    "jetscan_grpc_requests_total",
    "gRPC requests the edge answered, by method and status code.",
    ["method", "code"],
)
GRPC_SECONDS = Histogram(
    "jetscan_grpc_request_duration_seconds",
    "gRPC request latency at the edge, by method (a stream: until it ends).",
    ["method"],
    buckets=_LATENCY,
)
HTTP_REQUESTS = Counter(
    "jetscan_http_requests_total",
    "HTTP requests the edge answered, by method and status code.",
    ["method", "code"],
)
HTTP_SECONDS = Histogram(
    "jetscan_http_request_duration_seconds",
    "HTTP request latency at the edge, by method.",
    ["method"],
    buckets=_LATENCY,
)
VIEWERS = Gauge("jetscan_websocket_viewers", "Live console WebSockets open now.")

_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Call:
    __slots__ = ("method", "seconds", "span", "started")

    def __init__(self, method: str, seconds: Any, started: float) -> None:
        self.method = method
        self.seconds = seconds
        self.started = started
        self.span: tracing.ServerSpan | None = None


_call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("grpc_call", default=None)


class GrpcMetrics:
    """grpclib event listeners: `on_request` (RecvRequest) must be registered before any
    listener that may refuse the call (auth), so a refused call is counted too."""

    def __init__(self) -> None:
        self._seconds: dict[str, Any] = {}
        self._requests: dict[tuple[str, str], Any] = {}

    async def on_request(self, event: RecvRequest) -> None:
        method = event.method_name
        seconds = self._seconds.get(method)
        if seconds is None:
            seconds = self._seconds[method] = GRPC_SECONDS.labels(method)
        call = _Call(method, seconds, time.perf_counter())
        if tracing.enabled():
            call.span = tracing.ServerSpan(method, _text(event.metadata))
        _call.set(call)

    async def on_trailers(self, event: SendTrailingMetadata) -> None:
        call = _call.get()
        if call is None:
            return
        _call.set(None)
        call.seconds.observe(time.perf_counter() - call.started)
        code = event.status.name
        key = (call.method, code)
        requests = self._requests.get(key)
        if requests is None:
            requests = self._requests[key] = GRPC_REQUESTS.labels(call.method, code)
        requests.inc()
        if call.span is not None:
            call.span.end(code, event.status.value == 0)


def _text(metadata: MutableMapping[str, Any]) -> dict[str, str]:
    value = metadata.get(tracing.HEADER)
    return {tracing.HEADER: value} if isinstance(value, str) else {}


class HttpMetrics:
    """ASGI middleware counting HTTP requests (WebSockets are counted as viewers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _HTTP_METHODS else "other"
        started = time.perf_counter()
        code = "500"

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            HTTP_SECONDS.labels(method).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(method, code).inc()


def counting_viewers(
    handle: Callable[[WebSocket], Awaitable[None]],
) -> Callable[[WebSocket], Awaitable[None]]:
    """`handle`, with `jetscan_websocket_viewers` up while it runs."""

    async def counted(ws: WebSocket) -> None:
        VIEWERS.inc()
        try:
            await handle(ws)
        finally:
            VIEWERS.dec()

    return counted
