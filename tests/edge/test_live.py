"""The live console end to end: real websockets clients against uvicorn on 127.0.0.1, lines
published by the worker's own `Console` on the real JetStream, the durable copy by ingest."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import uvicorn
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from nats.aio.client import Client
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from contracts import subjects, wire
from contracts.gen.jetscan import v1
from contracts.output import Stream
from contracts.scans import ScanEvent, ScanStatus
from contracts.settings import Address
from edge.auth import TokenCache
from edge.bus import Bus
from edge.ws import ConsoleSocket
from tests.conftest import Stack, free_port
from workers.console import MAX_IN_FLIGHT, Console
from workers.stack import wait_listening

pytestmark = pytest.mark.slow
Frames = list[dict[str, Any]]


async def fake_scan(stack: Stack) -> str:
    """A running scan with no job: the test plays the worker and the launcher."""
    scan_id = f"live-{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        # updated_at in the future keeps liveness away; result_at lets `succeeded` apply.
        await conn.execute(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at,"
            " started_at, updated_at, result_at) VALUES ($1, '127.0.0.1', '127.0.0.1', 'nmap',"
            " 'running', 600, now(), now(), now() + interval '1 hour', now())",
            scan_id,
        )
    finally:
        await conn.close()
    return scan_id


async def produce(
    nc: Client, scan_id: str, first: int, count: int, *, end: bool, width: int = 40
) -> None:
    """Lines `first`..`first+count-1` as the worker sends them (and EndOfOutput if `end`)."""
    console = Console(nc.jetstream(publish_async_max_pending=MAX_IN_FLIGHT), scan_id)
    console.seq = first - 1
    sender = asyncio.create_task(console.run())
    for i in range(first, first + count):
        stream = Stream.STDERR if i % 7 == 0 else Stream.STDOUT
        console.line(stream, f"{i:08d} ".encode() + b"x" * width)
    if end:
        console.close(0)
        await sender
        return
    # A job still running: its lines are out, and the console stays open.
    while console._queue or console._in_flight:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.01)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)


async def finish(nc: Client, scan_id: str, status: ScanStatus = ScanStatus.SUCCEEDED) -> None:
    event = ScanEvent(scan_id=scan_id, status=status, at=datetime.now(UTC), exit_code=0)
    await nc.jetstream().publish(
        subjects.scan_event(scan_id, status.value),
        wire.encode(event),
        headers={"Nats-Msg-Id": subjects.msg_id("scan", scan_id, status.value)},
    )


def ws_url(base: str, scan_id: str, **query: object) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{base}/ws/scans/{scan_id}" + (f"?{q}" if q else "")


async def watch(
    url: str,
    token: str | None,
    *,
    delay: float = 0.0,
    pause_after: int | None = None,
    pause: float = 0.0,
    gate: asyncio.Event | None = None,
) -> tuple[Frames, int | None]:
    """Every frame until the server closes, and the close code. With `gate`, the viewer
    stops reading after its first line until the gate opens."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    frames: Frames = []
    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        try:
            async for raw in ws:
                frames.append(json.loads(raw))
                if delay:
                    await asyncio.sleep(delay)
                if pause_after is not None and len(frames) == pause_after:
                    await asyncio.sleep(pause)
                if gate is not None and frames[-1]["type"] == "line":
                    await gate.wait()
        except ConnectionClosed:
            pass
    return frames, ws.close_code


def line_seqs(frames: Frames) -> list[int]:
    return [f["seq"] for f in frames if f["type"] == "line"]


def statuses(frames: Frames) -> list[str]:
    return [f["scan"]["status"] for f in frames if f["type"] == "status"]


@pytest.fixture
def base(stack: Stack) -> str:
    return f"ws://{stack.settings.http_addr}"


async def test_a_viewer_gets_every_line_in_order_then_the_end(
    stack: Stack, nc: Client, base: str
) -> None:
    scan_id = await fake_scan(stack)
    viewer = asyncio.create_task(watch(ws_url(base, scan_id), stack.admin_token))
    await asyncio.sleep(0.3)  # connected before the first line: all of it is live
    await produce(nc, scan_id, 1, 3000, end=True)
    await finish(nc, scan_id)
    frames, code = await asyncio.wait_for(viewer, 30)
    assert code == 1000
    assert line_seqs(frames) == list(range(1, 3001))
    assert statuses(frames) == ["running", "succeeded"]
    assert frames[-1]["type"] == "status"
    first = next(f for f in frames if f["type"] == "line")
    assert first["stream"] == "stdout" and first["text"].startswith("00000001 x")
    assert datetime.fromisoformat(first["time"]).tzinfo is not None


async def test_a_late_viewer_replays_then_follows_and_can_resume(
    stack: Stack, nc: Client, base: str
) -> None:
    scan_id = await fake_scan(stack)
    await produce(nc, scan_id, 1, 2000, end=False)
    viewer = asyncio.create_task(watch(ws_url(base, scan_id), stack.admin_token))
    resumed = asyncio.create_task(
        watch(ws_url(base, scan_id, after_seq=1500, token=stack.admin_token), None)
    )
    await asyncio.sleep(0.3)
    await produce(nc, scan_id, 2001, 2000, end=True)
    await finish(nc, scan_id)
    frames, code = await asyncio.wait_for(viewer, 30)
    assert code == 1000
    assert line_seqs(frames) == list(range(1, 4001))
    frames, code = await asyncio.wait_for(resumed, 30)
    assert code == 1000
    assert line_seqs(frames) == list(range(1501, 4001))


async def test_twenty_viewers_get_identical_streams_and_a_slow_one_delays_none(
    stack: Stack, nc: Client, base: str
) -> None:
    scan_id = await fake_scan(stack)
    url = ws_url(base, scan_id)
    done_at: dict[str, float] = {}

    async def timed(name: str, **kw: Any) -> tuple[Frames, int | None]:
        result = await watch(url, stack.admin_token, **kw)
        done_at[name] = time.monotonic()
        return result

    # The slow viewer stops reading after its first line: a stalled client, in a way that
    # does not depend on how fast this machine happens to be.
    gate = asyncio.Event()
    fast = [asyncio.create_task(timed(f"fast{i}")) for i in range(20)]
    slow = asyncio.create_task(timed("slow", gate=gate))
    await asyncio.sleep(0.5)
    await produce(nc, scan_id, 1, 2000, end=True)
    await finish(nc, scan_id)
    results = await asyncio.wait_for(asyncio.gather(*fast), 60)
    assert "slow" not in done_at and not slow.done()
    expected = [(f["type"], f.get("seq"), f.get("text")) for f in results[0][0]]
    assert len(expected) == 2002
    for frames, code in results:
        assert code == 1000
        assert [(f["type"], f.get("seq"), f.get("text")) for f in frames] == expected
    # Released within the edge's stall timeout, the slow viewer still gets everything.
    gate.set()
    slow_frames, code = await asyncio.wait_for(slow, 60)
    assert code == 1000
    assert line_seqs(slow_frames) == list(range(1, 2001))
    assert done_at["slow"] > max(t for name, t in done_at.items() if name != "slow")


async def test_a_viewer_after_the_stream_expired_gets_the_durable_copy(
    stack: Stack, nc: Client, base: str
) -> None:
    scan_id = await fake_scan(stack)
    await produce(nc, scan_id, 1, 2500, end=True)
    await finish(nc, scan_id)
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        for _ in range(200):
            n = await conn.fetchval("SELECT count(*) FROM scan_output WHERE scan_id = $1", scan_id)
            if n == 2500:
                break
            await asyncio.sleep(0.1)
        assert n == 2500
    finally:
        await conn.close()
    js = nc.jetstream()
    # The start expired: the stream keeps only the newest 1,000 messages of the scan.
    await js.purge_stream("OUTPUT", subject=subjects.scan_output(scan_id), keep=1000)
    frames, code = await watch(ws_url(base, scan_id), stack.admin_token)
    assert code == 1000
    assert line_seqs(frames) == list(range(1, 2501))
    assert statuses(frames) == ["succeeded", "succeeded"]
    # All of it expired: the durable copy alone, then the clean close.
    await js.purge_stream("OUTPUT", subject=subjects.scan_output(scan_id))
    frames, code = await watch(ws_url(base, scan_id, after_seq=2000), stack.admin_token)
    assert code == 1000
    assert line_seqs(frames) == list(range(2001, 2501))


async def test_refusals_have_their_close_codes(stack: Stack, base: str) -> None:
    scan_id = await fake_scan(stack)
    assert (await watch(ws_url(base, scan_id), None))[1] == 4401
    assert (await watch(ws_url(base, scan_id), "jst_not-a-token"))[1] == 4401
    assert (await watch(ws_url(base, scan_id, token="jst_nope"), None))[1] == 4401
    assert (await watch(ws_url(base, "no-such-scan"), stack.admin_token))[1] == 4404
    # The ids WatchScan refuses with INVALID_ARGUMENT (test_watch_scan_streams_...) get 4400.
    for bad in ("bad%20id", "a.b", "", "a/b", "x" * 129):
        assert (await watch(ws_url(base, bad), stack.admin_token))[1] == 4400, bad
    assert (await watch(ws_url(base, scan_id, after_seq=-1), stack.admin_token))[1] == 4400
    assert (await watch(ws_url(base, scan_id, after_seq=2**63), stack.admin_token))[1] == 4400
    assert (await watch(ws_url(base, scan_id, after_seq="1e3"), stack.admin_token))[1] == 4400
    for path in ("/ws/scans", "/ws/nothing", "/"):
        assert (await watch(f"{base}{path}", stack.admin_token))[1] == 4404, path


@pytest.fixture
async def stingy_edge(stack: Stack) -> AsyncIterator[str]:
    """The console endpoint alone under its own uvicorn, with a tiny buffer and patience."""
    bus = await Bus.connect(stack.settings.nats_url)
    tokens = TokenCache()
    await tokens.start(bus.js)
    port = free_port()
    app = Starlette(
        routes=[
            WebSocketRoute(
                "/ws/scans/{id}",
                ConsoleSocket(bus, tokens, stall_timeout=0.5, max_buffered=64).handle,
            )
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await wait_listening(Address("127.0.0.1", port), timeout=10)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await tokens.stop()
        await bus.close()


async def test_a_viewer_that_stops_reading_is_told_and_closed_1013_then_resumes(
    stack: Stack, nc: Client, stingy_edge: str
) -> None:
    scan_id = await fake_scan(stack)
    # ~18 MB: more than the socket buffers on both sides hold (and in two parts, as one
    # would not fit the worker's own queue).
    await produce(nc, scan_id, 1, 15000, end=False, width=600)
    await produce(nc, scan_id, 15001, 15000, end=True, width=600)
    await finish(nc, scan_id)
    url = ws_url(stingy_edge, scan_id)
    # The pause only has to outlast filling the socket buffers plus the 0.5 s stall
    # timeout; ten seconds leave room for a loaded machine.
    frames, code = await watch(url, stack.admin_token, pause_after=2, pause=10.0)
    assert code == 1013
    behind = frames[-1]
    assert behind["type"] == "behind"
    got = line_seqs(frames)
    assert got == list(range(1, len(got) + 1)) and behind["after_seq"] == got[-1] < 30000
    rest, code = await watch(ws_url(stingy_edge, scan_id, after_seq=got[-1]), stack.admin_token)
    assert code == 1000
    assert got + line_seqs(rest) == list(range(1, 30001))


async def test_watch_scan_streams_the_same_console_over_grpc(stack: Stack, nc: Client) -> None:
    scan_id = await fake_scan(stack)
    await produce(nc, scan_id, 1, 500, end=False)
    addr = stack.settings.grpc_addr
    ch = Channel(addr.host, addr.port)
    stub = v1.ScanServiceStub(ch, metadata={"authorization": f"Bearer {stack.admin_token}"})
    try:

        async def collect(after: int) -> list[v1.ScanEvent]:
            return [
                e async for e in stub.watch_scan(v1.WatchScanRequest(id=scan_id, after_seq=after))
            ]

        watchers = [asyncio.create_task(collect(0)), asyncio.create_task(collect(250))]
        await asyncio.sleep(0.3)
        await produce(nc, scan_id, 501, 500, end=True)
        await finish(nc, scan_id, ScanStatus.FAILED)
        full, resumed = await asyncio.wait_for(asyncio.gather(*watchers), 30)
        assert [e.line.seq for e in full if e.line] == list(range(1, 1001))
        assert [e.line.seq for e in resumed if e.line] == list(range(251, 1001))
        assert full[0].status and full[0].status.status == v1.ScanStatus.RUNNING
        assert full[-1].status and full[-1].status.status == v1.ScanStatus.FAILED
        refusals = [("no-such-scan", Status.NOT_FOUND)] + [
            (bad, Status.INVALID_ARGUMENT) for bad in ("bad id", "a.b", "", "a/b", "x" * 129)
        ]
        for bad, status in refusals:
            with pytest.raises(GRPCError) as err:
                await stub.watch_scan(v1.WatchScanRequest(id=bad)).__anext__()
            assert err.value.status == status, bad
            if status == Status.INVALID_ARGUMENT:
                assert (err.value.message or "").startswith("id:"), err.value.message
        with pytest.raises(GRPCError) as err:
            await stub.watch_scan(v1.WatchScanRequest(id=scan_id, after_seq=2**63)).__anext__()
        assert err.value.status == Status.INVALID_ARGUMENT
        assert (err.value.message or "").startswith("after_seq:")
    finally:
        ch.close()


async def test_a_real_nmap_scan_streams_its_console(stack: Stack, base: str) -> None:
    from tests.handlers.test_lifecycle import nmap_request

    addr = stack.settings.grpc_addr
    ch = Channel(addr.host, addr.port)
    stub = v1.ScanServiceStub(ch, metadata={"authorization": f"Bearer {stack.admin_token}"})
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        started = await stub.start_scan(nmap_request(port))
        frames, code = await asyncio.wait_for(
            watch(ws_url(base, started.id), stack.admin_token), 60
        )
        assert code == 1000
        seqs = line_seqs(frames)
        assert seqs and seqs == list(range(1, len(seqs) + 1))
        text = "\n".join(f["text"] for f in frames if f["type"] == "line")
        assert "Nmap" in text
        assert statuses(frames)[-1] == "succeeded"
        assert frames[-1]["scan"]["exit_code"] == 0
        late, code = await watch(ws_url(base, started.id), stack.admin_token)
        assert code == 1000 and line_seqs(late) == seqs
    finally:
        ch.close()
        server.close()
        await server.wait_closed()


async def test_the_cli_follows_a_real_scan_live_and_exits_with_its_code(stack: Stack) -> None:
    from tests.conftest import run_jetscan

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_GRPC_ADDR": str(stack.settings.grpc_addr),
    }
    try:
        port = server.sockets[0].getsockname()[1]
        code, out, err = await run_jetscan(
            env,
            "scan",
            "start",
            "127.0.0.1",
            "--tool",
            "nmap",
            "--set",
            f"ports={port}",
            "--set",
            "reverse_dns=false",
            "--follow",
            "--json",
        )
    finally:
        server.close()
        await server.wait_closed()
    assert code == 0, err
    events = [json.loads(x) for x in out.splitlines()]
    lines = [e["line"] for e in events if "line" in e]
    assert [int(x["seq"]) for x in lines] == list(range(1, len(lines) + 1))
    assert any("Nmap" in x["text"] for x in lines)
    assert events[-1]["status"]["status"] == "SCAN_STATUS_SUCCEEDED"
