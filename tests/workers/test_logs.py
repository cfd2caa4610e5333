"""`JETSCAN_LOG_FORMAT=json`: one JSON object per line, with the scan and trace where known;
and a role run alone serves its metrics beside its probes."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

from contracts import tracing
from contracts.settings import Settings
from tests.conftest import ROOT, free_port
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


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.slow
async def test_a_role_run_alone_logs_json_and_serves_metrics(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **settings.passthrough,
        "JETSCAN_HOME": str(tmp_path),
        "JETSCAN_NATS_URL": settings.nats_url,
        "JETSCAN_DATABASE_URL": settings.database_url,
        "JETSCAN_HEALTH_ADDR": f"127.0.0.1:{port}",
        "JETSCAN_LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.cli",
        "run",
        "queries",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            try:
                code, _ = await http_get(port, "/readyz")
            except OSError:
                code = 0
            if code == 200:
                break
            assert loop.time() < deadline, "queries not ready"
            await asyncio.sleep(0.1)
        code, body = await http_get(port, "/metrics")
        assert code == 200
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert {"jetscan_db_pool_connections", "jetscan_messages"} <= names
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.decode().splitlines()]
    assert lines, "no log lines"
    assert {line["role"] for line in lines} == {"queries"}
    assert any("health routes" in line["message"] for line in lines)
