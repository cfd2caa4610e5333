"""How one scan's trace context travels: the W3C `traceparent` header on NATS messages and
`JETSCAN_TRACEPARENT` in a scan job's environment, and the spans around handling them.

This is the one module that calls the OpenTelemetry API. It lives in `contracts` because the
edge, the handlers and the job all put context on the same messages and none of them may
import the others; it uses the API only (no SDK, no I/O). A process turns tracing on by
handing `enable` a tracer (`workers/telemetry.py` builds it when OTEL_EXPORTER_OTLP_ENDPOINT
is set). Until then every function here is one test of a module global: no tracer provider,
no header work, the header dicts passed in come back untouched.

The scan id and trace id of what a task is handling live in context variables, so the JSON
log format (`workers/logs.py`) can put them on every line.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

CONSUMER = trace.SpanKind.CONSUMER
HEADER = "traceparent"

# The scan a task is working on, where known: for logs.
scan_id: contextvars.ContextVar[str] = contextvars.ContextVar("jetscan_scan_id", default="")

_propagator = TraceContextTextMapPropagator()


class _Switch:
    __slots__ = ("tracer",)

    def __init__(self) -> None:
        self.tracer: trace.Tracer | None = None


_on = _Switch()


def enable(tracer: trace.Tracer) -> None:
    _on.tracer = tracer


def disable() -> None:
    _on.tracer = None


def enabled() -> bool:
    return _on.tracer is not None


def inject(headers: dict[str, str]) -> dict[str, str]:
    """`headers` with the current span's `traceparent` added (tracing on and a span current)."""
    if _on.tracer is not None:
        _propagator.inject(headers)
    return headers


def traceparent() -> str:
    """The current span's `traceparent` value, "" when tracing is off or no span is current."""
    if _on.tracer is None:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(HEADER, "")


def current_trace_id() -> str:
    """The current trace id in hex, "" when there is none (what the JSON logs print)."""
    if _on.tracer is None:
        return ""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


@contextlib.contextmanager
def span(
    name: str,
    parent: Mapping[str, str] | None = None,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    scan: str = "",
) -> Iterator[None]:
    """Run the block in a span named `name`, the child of the `traceparent` in `parent`
    (message headers, or the job's environ under `HEADER`), else of the current span.

    Sets the scan id for logs either way; with tracing off that is all it does.
    """
    # Set (and reset) even without `scan`, so `mark_scan` inside lasts only for the block.
    token = scan_id.set(scan or scan_id.get())
    try:
        if _on.tracer is None:
            yield
            return
        ctx = _propagator.extract(parent) if parent is not None else None
        attributes = {"jetscan.scan_id": scan} if scan else None
        with _on.tracer.start_as_current_span(name, context=ctx, kind=kind, attributes=attributes):
            yield
    finally:
        scan_id.reset(token)


def mark_scan(scan: str) -> None:
    """Name the scan the current task handles, once it is known (after decoding a message)."""
    scan_id.set(scan)
    if _on.tracer is not None:
        trace.get_current_span().set_attribute("jetscan.scan_id", scan)


class ServerSpan:
    """A span opened in one callback and ended in another of the same task (grpclib's
    request events): it is made current for the rest of the task."""

    __slots__ = ("_span",)

    def __init__(self, name: str, parent: Mapping[str, str]) -> None:
        if _on.tracer is None:
            raise RuntimeError("tracing is off")
        self._span = _on.tracer.start_span(
            name, context=_propagator.extract(parent), kind=trace.SpanKind.SERVER
        )
        otel_context.attach(trace.set_span_in_context(self._span))

    def end(self, code: str, ok: bool) -> None:
        self._span.set_attribute("rpc.grpc.status_code", code)
        if not ok:
            self._span.set_status(trace.StatusCode.ERROR, code)
        self._span.end()
