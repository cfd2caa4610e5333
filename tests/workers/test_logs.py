"""`JETSCAN_LOG_FORMAT=json`: one JSON object per line, with the scan and trace where known.
(`tests/workers/test_health.py` runs a role with it.)"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from opentelemetry.sdk.trace import TracerProvider

from contracts import tracing
from workers import logs
from workers.logs import JsonFormatter

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("handlers.ingest", logging.WARNING, __file__, 1, message, args, None)


def test_a_line_names_role_logger_level_and_message() -> None:
    line = json.loads(JsonFormatter("ingest").format(record("scan %s is %s", "s1", "running")))
    assert line.keys() == {"time", "level", "role", "logger", "message"}
    assert line["level"] == "WARNING" and line["role"] == "ingest"
    assert line["logger"] == "handlers.ingest"
    assert line["message"] == "scan s1 is running"
    assert line["time"].endswith("+00:00")


def test_the_scan_and_trace_being_handled_are_on_the_line() -> None:
    provider = TracerProvider()
    tracing.enable(provider.get_tracer("test"))
    try:
        with tracing.span("ingest result", {tracing.HEADER: PARENT}, scan="s9"):
            line = json.loads(JsonFormatter("ingest").format(record("stored")))
    finally:
        tracing.disable()
        provider.shutdown()
    assert line["scan_id"] == "s9"
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_an_exception_stays_inside_its_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        rec = record("failed")
        rec.exc_info = sys.exc_info()
    out = JsonFormatter("launcher").format(rec)
    assert "\n" not in out
    assert "ValueError: boom" in json.loads(out)["exception"]


def test_under_jetscan_up_each_line_names_its_role() -> None:
    async def in_role() -> str:
        logs.role.set("launcher")
        return JsonFormatter("jetscan").format(record("started"))

    assert json.loads(asyncio.run(in_role()))["role"] == "launcher"
    assert json.loads(JsonFormatter("jetscan").format(record("up")))["role"] == "jetscan"
