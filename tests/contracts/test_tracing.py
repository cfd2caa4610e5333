"""Trace context on messages and in the job env: nothing at all while tracing is off; with it
on, a span continues the trace named in its parent's `traceparent`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts import tracing
from workers import telemetry

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider.get_tracer("test"))
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


def test_off_adds_no_header_and_installs_no_provider() -> None:
    stop = telemetry.start_tracing("", "jetscan")
    assert not tracing.enabled()
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    headers = {"Nats-Msg-Id": "x"}
    with tracing.span("command", {tracing.HEADER: PARENT}, scan="s1"):
        assert tracing.scan_id.get() == "s1"
        assert tracing.inject(headers) is headers
        assert headers == {"Nats-Msg-Id": "x"}
        assert tracing.traceparent() == ""
        assert tracing.current_trace_id() == ""
    assert tracing.scan_id.get() == ""
    stop()


def test_a_span_continues_the_trace_of_its_parent(exported: InMemorySpanExporter) -> None:
    with tracing.span("command", {tracing.HEADER: PARENT}, kind=tracing.CONSUMER, scan="s1"):
        headers = tracing.inject({"Nats-Msg-Id": "x"})
        assert tracing.current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
        with tracing.span("launch"):
            child = tracing.traceparent()
    command, launch = sorted(exported.get_finished_spans(), key=lambda s: s.name)
    assert command.context is not None and launch.context is not None
    assert format(command.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert command.parent is not None and format(command.parent.span_id, "016x") == (
        "b7ad6b7169203331"
    )
    assert command.kind == trace.SpanKind.CONSUMER
    assert command.attributes == {"jetscan.scan_id": "s1"}
    assert launch.parent is not None and launch.parent.span_id == command.context.span_id
    assert headers[tracing.HEADER] == (
        f"00-0af7651916cd43dd8448eb211c80319c-{command.context.span_id:016x}-01"
    )
    assert child.split("-")[2] == f"{launch.context.span_id:016x}"


def test_a_message_without_context_starts_a_trace(exported: InMemorySpanExporter) -> None:
    with tracing.span("ingest result", {}):
        tracing.mark_scan("s2")
    (span,) = exported.get_finished_spans()
    assert span.parent is None
    assert span.attributes == {"jetscan.scan_id": "s2"}


def test_a_server_span_ends_with_the_rpc_status(exported: InMemorySpanExporter) -> None:
    async def call() -> None:
        # The RecvRequest hook opens it; the handler's spans and headers are its children.
        rpc = tracing.ServerSpan("/jetscan.v1.ScanService/StartScan", {})
        headers = tracing.inject({})
        rpc.end("INVALID_ARGUMENT", ok=False)
        assert headers[tracing.HEADER].startswith("00-")

    asyncio.run(call())  # its own context: the span made current does not outlive the call
    (span,) = exported.get_finished_spans()
    assert span.kind == trace.SpanKind.SERVER
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.attributes == {"rpc.grpc.status_code": "INVALID_ARGUMENT"}


def test_a_scan_named_inside_a_span_is_forgotten_after_it() -> None:
    with tracing.span("ingest event", {}):
        tracing.mark_scan("s3")
        assert tracing.scan_id.get() == "s3"
    assert tracing.scan_id.get() == ""
