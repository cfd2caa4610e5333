"""Turning tracing on for a process: the OpenTelemetry SDK with an OTLP/HTTP exporter.

Only when OTEL_EXPORTER_OTLP_ENDPOINT is set (`Settings.otlp_endpoint`, or the job's env):
otherwise nothing here runs, no tracer provider exists, and `contracts.tracing` stays off.
The endpoint is the standard base URL; spans go to `<endpoint>/v1/traces` in batches from
the SDK's own thread, so a slow collector never blocks the event loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from contracts import VERSION, tracing

log = logging.getLogger(__name__)


def traces_url(endpoint: str) -> str:
    return endpoint.rstrip("/") + "/v1/traces"


def start_tracing(endpoint: str, service: str, *, delay: float = 1.0) -> Callable[[], None]:
    """Trace this process to `endpoint` as `service`; return what flushes and stops it.

    With no endpoint, returns a no-op and installs nothing.
    """
    if not endpoint:
        return _nothing
    # Imported only now: a process that does not trace never loads the SDK (~80 ms).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.version": VERSION})
    )
    exporter = OTLPSpanExporter(endpoint=traces_url(endpoint), timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay * 1000))
    tracing.enable(provider.get_tracer("jetscan", VERSION))
    log.info("tracing to %s as %s", traces_url(endpoint), service)

    def stop() -> None:
        tracing.disable()
        provider.shutdown()  # flushes what is still queued

    return stop


def _nothing() -> None:
    pass


@contextlib.contextmanager
def tracing_to(endpoint: str, service: str) -> Iterator[None]:
    """`start_tracing` for the block (nothing without an endpoint)."""
    stop = start_tracing(endpoint, service)
    try:
        yield
    finally:
        stop()
