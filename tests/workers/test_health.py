"""Health routes of a role run alone, as a Kubernetes probe reaches them."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from contracts import VERSION
from contracts.settings import Settings
from tests.conftest import ROOT, free_port
from workers.health import answer


async def get(port: int, path: str) -> tuple[int, dict[str, object]]:
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
    return int(head.split()[1]), json.loads(body)


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


@pytest.mark.slow
async def test_a_role_run_alone_answers_probes_and_stops_on_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **settings.passthrough,
        "JETSCAN_HOME": str(tmp_path),
        "JETSCAN_NATS_URL": settings.nats_url,
        "JETSCAN_DATABASE_URL": settings.database_url,
        "JETSCAN_HEALTH_ADDR": f"127.0.0.1:{port}",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "run", "queries", cwd=ROOT, env=env
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
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
