"""A feed keeps `seq` contiguous across a NATS restart: its own nats-server, stopped and
started again on the same port and store while a viewer follows a scan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import nats
import pytest
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, ServiceConfig

from contracts import subjects, wire
from contracts.output import OutputPage
from contracts.scans import ScanEvent, ScanStatus, ScanView
from edge.bus import Bus
from edge.live import Feed, Frame
from handlers import topology
from tests.conftest import free_port
from tests.edge.test_live import produce
from workers.embedded import NatsServer

pytestmark = pytest.mark.slow


class QueriesStandIn:
    """Answers the two queries a feed asks, as the queries role would for this scan."""

    def __init__(self, scan_id: str) -> None:
        self.view = ScanView(
            id=scan_id,
            target="127.0.0.1",
            domain="127.0.0.1",
            tool="nmap",
            config={},
            status=ScanStatus.RUNNING,
            created_at=datetime.now(UTC),
            deadline_seconds=60,
        )

    async def get(self, req: Request) -> None:
        await req.respond(wire.encode(self.view))

    async def output(self, req: Request) -> None:
        await req.respond(wire.encode(OutputPage()))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    s = NatsServer(tmp_path / "nats", port=free_port())
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def test_a_feed_survives_a_nats_restart(server: NatsServer) -> None:
    url = server.url
    scan_id = "reconnect-scan"
    stand_in = QueriesStandIn(scan_id)
    setup = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    bus = await Bus.connect(url)
    frames: list[Frame] = []
    try:
        await topology.apply(setup.jetstream(), topology.load())
        service = await add_service(setup, ServiceConfig(name="stand-in", version="0.0.1"))
        await service.add_endpoint(
            EndpointConfig(name="get", subject=subjects.query("scan", "get"), handler=stand_in.get)
        )
        await service.add_endpoint(
            EndpointConfig(
                name="out", subject=subjects.query("output", "list"), handler=stand_in.output
            )
        )

        await setup.flush()  # the server has the stand-in's subscriptions before any request

        async def follow() -> None:
            async for frame in Feed(bus, scan_id).frames():
                frames.append(frame)

        viewer = asyncio.create_task(follow())
        await produce(setup, scan_id, 1, 500, end=False)
        # Generous bounds: on a loaded two-core machine the first 500 lines can take seconds.
        for _ in range(1200):
            if len(frames) >= 501:
                break
            await asyncio.sleep(0.05)
        assert len(frames) == 501

        await server.stop()
        await asyncio.sleep(0.5)
        await server.start()
        for _ in range(1200):  # both clients back before the rest of the scan is sent
            if setup.is_connected and bus.nc.is_connected:
                break
            await asyncio.sleep(0.05)
        await produce(setup, scan_id, 501, 500, end=True)
        stand_in.view = msgspec.structs.replace(stand_in.view, status=ScanStatus.SUCCEEDED)
        event = ScanEvent(scan_id=scan_id, status=ScanStatus.SUCCEEDED, at=datetime.now(UTC))
        await setup.jetstream().publish(
            subjects.scan_event(scan_id, "succeeded"), wire.encode(event)
        )
        await asyncio.wait_for(viewer, 90)
    finally:
        await bus.close()
        await setup.drain()
    lines = [f.seq for f in frames if not isinstance(f, ScanView)]
    assert lines == list(range(1, 1001))
    last = frames[-1]
    assert isinstance(last, ScanView) and last.status is ScanStatus.SUCCEEDED
