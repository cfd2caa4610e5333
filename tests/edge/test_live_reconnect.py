"""A feed keeps `seq` contiguous across a NATS restart: its own nats-server, stopped and
started again on the same port and store while a viewer follows a scan. The queries and
ingest roles run for real against it (and the session's PostgreSQL), so the status the feed
ends with is the one ingest projected and queries read back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import msgspec
import nats
import pytest
from grpclib import GRPCError

from contracts import subjects
from contracts.scans import GetScan, ScanStatus, ScanView
from contracts.settings import Settings
from edge.bus import Bus
from edge.live import Feed, Frame
from handlers import topology
from tests.conftest import free_port
from tests.edge.test_live import finish, produce
from workers.embedded import NatsServer
from workers.roles import supervise

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    s = NatsServer(tmp_path / "nats", port=free_port())
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.mark.timeout(300)  # two roles, a server restart and 1,000 lines on a loaded machine
async def test_a_feed_survives_a_nats_restart(
    server: NatsServer, settings: Settings, database_url: str
) -> None:
    url = server.url
    scan_id = f"reconnect-{uuid.uuid4().hex[:12]}"
    setup = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await topology.apply(setup.jetstream(), topology.load())
    await insert_running_scan(database_url, scan_id)
    roles = msgspec.structs.replace(settings, nats_url=url, database_url=database_url)
    stop = asyncio.Event()
    running = asyncio.create_task(supervise(roles, ["queries", "ingest"], stop))
    bus = await Bus.connect(url)
    frames: list[Frame] = []
    try:
        await until(lambda: answers(bus, scan_id), "the queries role answering")

        async def follow() -> None:
            async for frame in Feed(bus, scan_id).frames():
                frames.append(frame)

        viewer = asyncio.create_task(follow())
        await produce(setup, scan_id, 1, 500, end=False)
        # Generous bounds: on a loaded two-core machine the first 500 lines can take seconds.
        await until(lambda: done(len(frames) >= 501), "the first 500 lines")
        assert len(frames) == 501
        first = frames[0]
        assert isinstance(first, ScanView) and first.status is ScanStatus.RUNNING

        await server.stop()
        await asyncio.sleep(0.5)  # the restart itself, not a wait for a condition
        await server.start()
        # Both clients back before the rest of the scan is sent.
        await until(lambda: done(setup.is_connected and bus.nc.is_connected), "reconnects")
        await produce(setup, scan_id, 501, 500, end=True)
        await finish(setup, scan_id)
        await asyncio.wait_for(viewer, 120)
    finally:
        await bus.close()
        await setup.drain()
        stop.set()
        await asyncio.wait_for(running, 30)
    lines = [f.seq for f in frames if not isinstance(f, ScanView)]
    assert lines == list(range(1, 1001))
    last = frames[-1]
    assert isinstance(last, ScanView) and last.status is ScanStatus.SUCCEEDED
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT status FROM scans WHERE id = $1", scan_id)
    finally:
        await conn.close()
    assert stored == "succeeded"


async def insert_running_scan(database_url: str, scan_id: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # updated_at in the future keeps liveness away; result_at lets `succeeded` apply.
        await conn.execute(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at,"
            " started_at, updated_at, result_at) VALUES ($1, '127.0.0.1', '127.0.0.1/32', 'nmap',"
            " 'running', 600, now(), now(), now() + interval '1 hour', now())",
            scan_id,
        )
    finally:
        await conn.close()


async def answers(bus: Bus, scan_id: str) -> bool:
    try:
        view = await bus.query(subjects.query("scan", "get"), GetScan(id=scan_id), ScanView)
    except GRPCError:
        return False
    return view.status is ScanStatus.RUNNING


async def done(condition: bool) -> bool:
    return condition


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, f"no {what} within {within}s"
        await asyncio.sleep(0.05)
