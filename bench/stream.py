"""Console lines from a worker to WebSocket viewers, next to raw nats-py publish → subscribe.

One run starts nats-server and PostgreSQL (embedded, `sync_interval: always`), the edge and
the queries role as `jetscan run ROLE` processes, and for each measurement a worker process
that prints lines through the worker's own `Console` (JetStream `publish_async`). This process
is the viewer: websockets clients on `/ws/scans/<id>`. Ingest is left out unless
`--with-ingest`: it is not on the path from worker to viewer, and on a small machine its
PostgreSQL writes would only take CPU from it.

The baseline is the same lines, the same process layout, on plain NATS: the worker process
publishes each line with `nc.publish`, this process subscribes with nats-py.

- `throughput`: `--lines` lines as fast as the worker produces them, one viewer; lines/s from
  the worker's first line to the viewer's last.
- `latency`: lines paced at `--rate` per second for `--seconds`; each line carries its wall
  clock time of creation, the viewer its arrival: p50/p99 in ms.
- `fan_out`: `--viewers` viewers of one scan, `--fan-lines` lines; the aggregate lines/s over
  all viewers, and its ratio to the one-viewer rate (target ≥ 0.5).

`--tracing both` (the default) runs everything twice, on a fresh stack each time: with the
roles' tracing off, and on, exporting to an OTLP receiver in its own process (`bench/otlp.py`).
The figures with it off are the main result; `traced` holds the others and
`traced_vs_off` the ratios (lines/s on over off; for latency, p99 on over off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats

from bench.processes import REPO, EmbeddedStack
from contracts.settings import Settings

TARGETS = {"lines_per_s": 50_000, "p99_ms_at_2000": 50.0, "fan_out_ratio": 0.5}
_FILLER = "x" * 60


class _Line(msgspec.Struct):
    type: str
    seq: int = 0
    text: str = ""


class _Msg(msgspec.Struct):
    """An OUTPUT message as a replaying reader sees it: a line, a batch of lines, the end."""

    type: str
    seq: int = 0
    text: str = ""
    lines: list[_Line] = []


class _Raw(msgspec.Struct):
    seq: int
    text: str


_frame = msgspec.json.Decoder(_Line)
_message = msgspec.json.Decoder(_Msg)
_raw = msgspec.json.Decoder(_Raw)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench stream", description=__doc__)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--fan-lines", type=int, default=2000)
    parser.add_argument("--with-ingest", action="store_true")
    parser.add_argument("--tracing", choices=["off", "on", "both"], default="both")
    parser.add_argument("--produce", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.produce:
        url, side, scan_id, count, rate = args.produce
        return asyncio.run(_produce(url, side, scan_id, int(count), int(rate)))
    root = Path(tempfile.gettempdir()).resolve()
    # pgserver's unprivileged user cannot enter /root (see bench/start.py).
    base = "/tmp" if root.is_relative_to("/root") else str(root)  # noqa: S108
    with tempfile.TemporaryDirectory(prefix="jetscan-bench-", dir=base) as tmp:
        result = asyncio.run(_both(args, Path(tmp)))
    print(json.dumps(result, indent=2))
    return 0


async def _both(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from bench.otlp import receiver_process

    off = on = None
    if args.tracing in ("off", "both"):
        off = await _bench(args, tmp / "off", "")
    if args.tracing in ("on", "both"):
        async with receiver_process() as (endpoint, tally):
            on = await _bench(args, tmp / "on", endpoint)
        on["spans_exported"] = tally.get("spans", 0)
    if off is None or on is None:
        result = off or on
        assert result is not None
        result["tracing"] = args.tracing
        return result
    off["tracing"] = "off"
    off["traced"] = on
    pairs = {
        "throughput_lines_per_s": ("throughput", "lines_per_s"),
        "latency_p99_ms": ("latency", "p99_ms"),
        "fan_out_lines_per_s": ("fan_out", "lines_per_s"),
    }
    off["traced_vs_off"] = {
        name: round(on["results"]["jetscan"][a][b] / off["results"]["jetscan"][a][b], 3)
        for name, (a, b) in pairs.items()
    } | {
        "replay_lines_per_s": round(
            on["replay"]["jetscan_ws"]["one_viewer"]["lines_per_s"]
            / off["replay"]["jetscan_ws"]["one_viewer"]["lines_per_s"],
            3,
        )
    }
    return off


# --- the worker (a child process) --------------------------------------------------------


async def _produce(url: str, side: str, scan_id: str, count: int, rate: int) -> int:
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
    for i in range(1, count + 1):
        text = f"{time.time_ns()} {i:08d} {_FILLER}"
        if sender is not None:
            console.line(Stream.STDOUT, text.encode())
        else:
            line = OutputLine(
                scan_id=scan_id, seq=i, time=datetime.now(UTC), stream=Stream.STDOUT, text=text
            )
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


async def _worker(url: str, side: str, scan_id: str, count: int, rate: int) -> dict[str, float]:
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


class _Viewer:
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


async def _ws_viewer(url: str, token: str, viewer: _Viewer, timed: bool) -> None:
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        first = _frame.decode(await ws.recv())  # the status frame: the feed is subscribed
        assert first.type == "status"
        viewer.ready.set()
        async for raw in ws:
            frame = _frame.decode(raw)
            if frame.type == "line":
                viewer.take(frame.seq, frame.text, timed)
                if viewer.done.is_set():
                    return


async def _raw_viewers(url: str, scan_id: str, viewers: list[_Viewer], timed: bool) -> Any:
    """A connection per viewer, as WebSocket viewers have: one connection for all would be
    a slow consumer to the server, which drops core NATS messages."""
    connections = []
    for viewer in viewers:
        nc = await nats.connect(url)
        connections.append(nc)

        async def on_msg(msg: Any, viewer: _Viewer = viewer) -> None:
            line = _raw.decode(msg.data)
            viewer.take(line.seq, line.text, timed)

        await nc.subscribe(f"bench.raw.{scan_id}", cb=on_msg)
        await nc.flush()
        viewer.ready.set()
    return connections


async def _measure(
    side: str, env: _Env, count: int, rate: int, viewers: int, timed: bool
) -> dict[str, Any]:
    scan_id = await env.scan()
    sys.stderr.write(f"bench stream: {side}, {viewers} viewer(s), {count} lines\n")
    watchers = [_Viewer(count) for _ in range(viewers)]
    tasks: list[asyncio.Task[None]] = []
    raw_nc: list[Any] = []
    if side == "jetscan":
        url = f"ws://{env.http}/ws/scans/{scan_id}"
        tasks = [asyncio.create_task(_ws_viewer(url, env.token, w, timed)) for w in watchers]
    else:
        raw_nc = await _raw_viewers(env.nats_url, scan_id, watchers, timed)
    try:
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in watchers)), 120)
        report = await _worker(env.nats_url, side, scan_id, count, rate)
        await asyncio.wait_for(asyncio.gather(*(w.done.wait() for w in watchers)), 600)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for nc in raw_nc:
            await nc.drain()
    elapsed = max(w.last_at for w in watchers) - report["start"]
    out: dict[str, Any] = {
        "scan_id": scan_id,
        "lines": count,
        "viewers": viewers,
        "seconds": round(elapsed, 3),
        "lines_per_s": round(count * viewers / elapsed),
        "producer_lines_per_s": round(count / (report["end"] - report["start"])),
        "in_order": all(w.in_order for w in watchers),
    }
    if timed:
        ordered = sorted(x for w in watchers for x in w.latencies)
        out["p50_ms"] = round(ordered[len(ordered) // 2], 2)
        out["p99_ms"] = round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2)
    return out


async def _replay(side: str, env: _Env, scan_id: str, count: int, viewers: int) -> dict[str, Any]:
    """Viewers joining after the fact: the stream already holds every line."""
    sys.stderr.write(f"bench stream: {side} replay, {viewers} viewer(s), {count} lines\n")
    watchers = [_Viewer(count) for _ in range(viewers)]
    start = time.time()
    if side == "jetscan":
        url = f"ws://{env.http}/ws/scans/{scan_id}"
        tasks = [asyncio.create_task(_ws_viewer(url, env.token, w, False)) for w in watchers]
        await asyncio.wait_for(asyncio.gather(*tasks), 600)
    else:
        from nats.js.api import DeliverPolicy

        nc = await nats.connect(env.nats_url)
        try:
            js = nc.jetstream()
            for viewer in watchers:

                async def on_msg(msg: Any, viewer: _Viewer = viewer) -> None:
                    message = _message.decode(msg.data)
                    if message.type == "line":
                        viewer.take(message.seq, message.text, False)
                    for line in message.lines:
                        viewer.take(line.seq, line.text, False)

                await js.subscribe(
                    f"scan.output.{scan_id}",
                    stream="OUTPUT",
                    cb=on_msg,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.ALL,
                )
            await asyncio.wait_for(asyncio.gather(*(w.done.wait() for w in watchers)), 600)
        finally:
            await nc.drain()
    elapsed = max(w.last_at for w in watchers) - start
    return {
        "lines": count,
        "viewers": viewers,
        "seconds": round(elapsed, 3),
        "lines_per_s": round(count * viewers / elapsed),
        "in_order": all(w.in_order for w in watchers),
    }


# --- the stack ---------------------------------------------------------------------------


class _Env:
    def __init__(self, settings: Settings, token: str) -> None:
        self.settings = settings
        self.nats_url = settings.nats_url
        self.http = settings.http_addr
        self.token = token

    async def scan(self) -> str:
        """A running scan for the edge to find; nothing runs it but the bench's worker."""
        scan_id = f"bench-{uuid.uuid4().hex[:16]}"
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            await conn.execute(
                "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds,"
                " created_at, started_at, updated_at) VALUES ($1, '127.0.0.1', '127.0.0.1',"
                " 'nmap', 'running', 3600, now(), now(), now() + interval '1 day')",
                scan_id,
            )
        finally:
            await conn.close()
        return scan_id


async def _bench(args: argparse.Namespace, home: Path, otlp: str) -> dict[str, Any]:
    from workers.stack import wait_listening

    home.mkdir(parents=True)
    stack = EmbeddedStack(home, otlp_endpoint=otlp)
    async with stack as settings:
        names = ["edge", "queries", *(["ingest"] if args.with_ingest else [])]
        for name in names:
            await stack.role(name, log_level="WARNING")
        await wait_listening(settings.http_addr, timeout=60)
        env = _Env(settings, settings.admin_token_path.read_text().strip())
        results: dict[str, Any] = {}
        for side in ("raw_nats", "jetscan"):
            results[side] = {
                "throughput": await _measure(side, env, args.lines, 0, 1, timed=False),
                "latency": await _measure(
                    side, env, int(args.rate * args.seconds), args.rate, 1, timed=True
                ),
                "fan_out": await _measure(side, env, args.fan_lines, 0, args.viewers, False),
            }
            one = results[side]["throughput"]["lines_per_s"]
            results[side]["fan_out"]["ratio_to_one_viewer"] = round(
                results[side]["fan_out"]["lines_per_s"] / one, 2
            )
        # The edge alone, without the worker's fsync-bound publishing: a scan whose lines
        # the stream already holds, replayed to one and to many late viewers.
        held = results["jetscan"]["throughput"]["scan_id"]
        replay: dict[str, Any] = {}
        for side, name in (("raw", "raw_ordered_consumer"), ("jetscan", "jetscan_ws")):
            one = await _replay(side, env, held, args.lines, 1)
            many = await _replay(side, env, held, args.fan_lines, args.viewers)
            many["ratio_to_one_viewer"] = round(many["lines_per_s"] / one["lines_per_s"], 2)
            replay[name] = {"one_viewer": one, "fan_out": many}
        return {
            "bench": "stream",
            "cpus": os.cpu_count(),
            "ingest_running": args.with_ingest,
            "targets": TARGETS,
            "results": results,
            "replay": replay,
            "jetscan_vs_raw_lines_per_s": round(
                results["jetscan"]["throughput"]["lines_per_s"]
                / results["raw_nats"]["throughput"]["lines_per_s"],
                3,
            ),
        }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
