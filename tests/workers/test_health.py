"""Health routes of a role run alone, as a Kubernetes probe reaches them."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import VERSION
from contracts.settings import Settings
from tests.conftest import ROOT, free_port
from workers.health import answer


async def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    code, _, body = await fetch(port, path)
    return code, json.loads(body)


async def fetch(port: int, path: str) -> tuple[int, bytes, bytes]:
    """Status, head and body of `GET path` from 127.0.0.1:`port`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: probe\r\nUser-Agent: kube-probe/1.33\r\n\r\n".encode()
        )
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body


@pytest.mark.parametrize(
    ("path", "up", "code", "body"),
    [
        ("/healthz", set(), 200, {"status": "ok", "version": VERSION}),
        ("/readyz", {"ingest"}, 200, {"ready": True, "down": []}),
        ("/readyz", set(), 503, {"ready": False, "down": ["ingest"]}),
        ("/nothing", {"ingest"}, 404, {"error": "no route /nothing"}),
    ],
)
def test_answers(path: str, up: set[str], code: int, body: dict[str, object]) -> None:
    assert answer(path, ["ingest"], up) == (code, body)


# Each role's own metrics; the edge's process never loads the handlers' (nor asyncpg).
ROLE_METRICS = {
    "queries": ({"jetscan_db_pool_connections", "jetscan_messages"}, "jetscan_grpc_requests"),
    "edge": ({"jetscan_grpc_requests", "jetscan_websocket_viewers"}, "jetscan_messages"),
}


@pytest.mark.slow
@pytest.mark.parametrize("role", sorted(ROLE_METRICS))
async def test_a_role_run_alone_answers_probes_serves_metrics_logs_json_and_stops_on_sigterm(
    settings: Settings, tmp_path: Path, role: str
) -> None:
    port = free_port()
    env = {
        **settings.passthrough,
        "JETSCAN_HOME": str(tmp_path),
        "JETSCAN_NATS_URL": settings.nats_url,
        "JETSCAN_DATABASE_URL": settings.database_url,
        "JETSCAN_HEALTH_ADDR": f"127.0.0.1:{port}",
        "JETSCAN_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "JETSCAN_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "JETSCAN_LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.cli",
        "run",
        role,
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            try:
                code, body = await get(port, "/readyz")
            except OSError:
                code, body = 0, {}
            if code == 200:
                break
            assert loop.time() < deadline, f"not ready: {code} {body}"
            await asyncio.sleep(0.1)
        assert body == {"ready": True, "down": []}
        assert await get(port, "/healthz") == (200, {"status": "ok", "version": VERSION})
        code, _, metrics = await fetch(port, "/metrics")
        assert code == 200
        names = {f.name for f in text_string_to_metric_families(metrics.decode())}
        mine, not_mine = ROLE_METRICS[role]
        assert mine <= names
        assert not_mine not in names
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.decode().splitlines()]
    assert {line["role"] for line in lines} == {role}
    assert any("health routes" in line["message"] for line in lines)
