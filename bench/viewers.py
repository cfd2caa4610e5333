"""The two ends of `bench stream`: the worker process that prints lines through the real
`Console` (or, for the baseline, plain `nc.publish`), and the viewers in the bench's own
process (WebSocket clients, or plain NATS subscribers)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats

from bench.processes import REPO

_FILLER = "x" * 60


class Line(msgspec.Struct):
    type: str
    seq: int = 0
    text: str = ""


class Msg(msgspec.Struct):
    """An OUTPUT message as a replaying reader sees it: a line, a batch of lines, the end."""

    type: str
    seq: int = 0
    text: str = ""
    lines: list[Line] = []


class Raw(msgspec.Struct):
    seq: int
    text: str


frame_decoder = msgspec.json.Decoder(Line)
message_decoder = msgspec.json.Decoder(Msg)
raw_decoder = msgspec.json.Decoder(Raw)


# --- the worker (a child process) --------------------------------------------------------


async def produce(url: str, side: str, scan_id: str, count: int, rate: int) -> int:
    from contracts import wire
    from contracts.output import OutputLine, Stream
    from workers.console import MAX_IN_FLIGHT, Console

    nc = await nats.connect(url)
    console = Console(nc.jetstream(publish_async_max_pending=MAX_IN_FLIGHT), scan_id)
    sender = asyncio.create_task(console.run()) if side == "jetscan" else None
    subject = f"bench.raw.{scan_id}"
    start = time.time()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    at = datetime.now(UTC)
    for i in range(1, count + 1):
        text = f"{time.time_ns()} {i:08d} {_FILLER}"
        # Paced, each line is a read of its own; flat out, as `Console.pump` reads a fast
        # scanner: many lines to a read, read at one time.
        if rate or i % 256 == 1:
            at = datetime.now(UTC)
        if sender is not None:
            console.line(Stream.STDOUT, text.encode(), at)
        else:
            line = OutputLine(scan_id=scan_id, seq=i, time=at, stream=Stream.STDOUT, text=text)
            await nc.publish(subject, wire.encode(line))
        if rate:
            ahead = t0 + i / rate - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
        elif i % 256 == 0:
            await asyncio.sleep(0)  # let the sender publish: `line` only queues
    if sender is not None:
        console.close(0)
        await sender
    else:
        await nc.flush()
    end = time.time()
    await nc.drain()
    sys.stdout.write(json.dumps({"start": start, "end": end, "dropped": console.dropped}) + "\n")
    return 0


async def worker(url: str, side: str, scan_id: str, count: int, rate: int) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.stream",
        "--produce",
        url,
        side,
        scan_id,
        str(count),
        str(rate),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    report: dict[str, float] = json.loads(out)
    if report["dropped"]:
        raise RuntimeError(f"the worker dropped {report['dropped']} lines")
    return report


# --- the viewers (this process) ----------------------------------------------------------


class Viewer:
    def __init__(self, count: int) -> None:
        self.count = count
        self.got = 0
        self.last_at = 0.0
        self.latencies: list[float] = []
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self.in_order = True

    def take(self, seq: int, text: str, timed: bool) -> None:
        now = time.time_ns()
        self.got += 1
        self.in_order &= seq == self.got
        if timed:
            self.latencies.append((now - int(text.split(" ", 1)[0])) / 1e6)
        if self.got >= self.count:
            self.last_at = now / 1e9
            self.done.set()


async def ws_viewer(url: str, token: str, viewer: Viewer, timed: bool) -> None:
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        first = frame_decoder.decode(await ws.recv())  # the status frame: the feed is subscribed
        assert first.type == "status"
        viewer.ready.set()
        async for raw in ws:
            frame = frame_decoder.decode(raw)
            if frame.type == "line":
                viewer.take(frame.seq, frame.text, timed)
                if viewer.done.is_set():
                    return


async def raw_viewers(url: str, scan_id: str, viewers: list[Viewer], timed: bool) -> Any:
    """A connection per viewer, as WebSocket viewers have: one connection for all would be
    a slow consumer to the server, which drops core NATS messages."""
    connections = []
    for viewer in viewers:
        nc = await nats.connect(url)
        connections.append(nc)

        async def on_msg(msg: Any, viewer: Viewer = viewer) -> None:
            line = raw_decoder.decode(msg.data)
            viewer.take(line.seq, line.text, timed)

        await nc.subscribe(f"bench.raw.{scan_id}", cb=on_msg)
        await nc.flush()
        viewer.ready.set()
    return connections
