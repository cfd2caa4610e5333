"""Console lines from a worker to WebSocket viewers, next to raw nats-py publish → subscribe.

One run starts nats-server and PostgreSQL (embedded, `sync_interval: always`), the edge,
queries and ingest roles as `jetscan run ROLE` processes, and for each measurement a worker
process that prints lines through the worker's own `Console` (JetStream `publish_async`).
This process is the viewer: websockets clients on `/ws/scans/<id>`. Ingest runs because the
real pipeline always keeps the console in PostgreSQL: it is not on the path from worker to
viewer, but its (and PostgreSQL's) CPU is taken from it; `ingest_lag_s` is how long after a
run's last line reached the viewer ingest had stored it. `--ingest off` leaves it out.

Throughput and latency are measured `--rounds` times; the median round is reported, with
every round's figure in `rounds` (the spread: the machine may be shared, see
`load_average_before_after`). `cpu_us_per_line` is the CPU each process spent per line over
the throughput rounds (`/proc`), which a busy machine distorts far less than lines/s: two
free cores carry 2e6 / total lines per second at most.

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
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import nats
from websockets.exceptions import ConnectionClosed

from bench import cpu
from bench.processes import EmbeddedStack
from bench.viewers import Viewer, message_decoder, produce, raw_viewers, worker, ws_viewer
from contracts.settings import Settings

TARGETS = {"lines_per_s": 50_000, "p99_ms_at_2000": 50.0, "fan_out_ratio": 0.5}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench stream", description=__doc__)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--fan-lines", type=int, default=2000)
    parser.add_argument("--ingest", choices=["on", "off"], default="on")
    # The default since ingest became part of the headline; kept for old command lines.
    parser.add_argument("--with-ingest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tracing", choices=["off", "on", "both"], default="both")
    parser.add_argument("--produce", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.produce:
        url, side, scan_id, count, rate = args.produce
        return asyncio.run(produce(url, side, scan_id, int(count), int(rate)))
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


async def _measure(
    side: str, env: _Env, count: int, rate: int, viewers: int, timed: bool
) -> dict[str, Any]:
    scan_id = await env.scan()
    sys.stderr.write(f"bench stream: {side}, {viewers} viewer(s), {count} lines\n")
    watchers = [Viewer(count) for _ in range(viewers)]
    tasks: list[asyncio.Task[None]] = []
    raw_nc: list[Any] = []
    if side == "jetscan":
        url = f"ws://{env.http}/ws/scans/{scan_id}"
        tasks = [asyncio.create_task(ws_viewer(url, env.token, w, timed)) for w in watchers]
    else:
        raw_nc = await raw_viewers(env.nats_url, scan_id, watchers, timed)
    try:
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in watchers)), 120)
        report = await worker(env.nats_url, side, scan_id, count, rate)
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
    if side == "jetscan" and env.ingest:
        # How far behind the viewers ingest's durable copy was: from the last line shown
        # to the last line stored.
        stored_at = await env.stored(scan_id, count)
        out["ingest_lag_s"] = round(max(stored_at - max(w.last_at for w in watchers), 0.0), 3)
    return out


async def _replay(side: str, env: _Env, scan_id: str, count: int, viewers: int) -> dict[str, Any]:
    """Viewers joining after the fact: the stream already holds every line."""
    sys.stderr.write(f"bench stream: {side} replay, {viewers} viewer(s), {count} lines\n")
    watchers = [Viewer(count) for _ in range(viewers)]
    start = time.time()
    if side == "jetscan":
        url = f"ws://{env.http}/ws/scans/{scan_id}"
        tasks = [asyncio.create_task(ws_viewer(url, env.token, w, False)) for w in watchers]
        await asyncio.wait_for(asyncio.gather(*tasks), 600)
    else:
        from nats.js.api import DeliverPolicy

        nc = await nats.connect(env.nats_url)
        try:
            # 100 ordered consumers made one after another, each replaying at once: a create
            # can wait behind the replays already flowing on this connection (5 s was not
            # always enough: one run in five on 2 cores ended in nats' TimeoutError).
            js = nc.jetstream(timeout=60)
            for viewer in watchers:

                async def on_msg(msg: Any, viewer: Viewer = viewer) -> None:
                    message = message_decoder.decode(msg.data)
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
    def __init__(self, settings: Settings, token: str, ingest: bool) -> None:
        self.settings = settings
        self.ingest = ingest
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

    async def stored(self, scan_id: str, count: int, timeout: float = 300.0) -> float:
        """When (wall clock) ingest had stored all `count` lines of `scan_id`."""
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                n = await conn.fetchval(
                    "SELECT count(*) FROM scan_output WHERE scan_id = $1", scan_id
                )
                if n >= count:
                    return time.time()
                await asyncio.sleep(0.02)
        finally:
            await conn.close()
        raise TimeoutError(f"ingest stored fewer than {count} lines of {scan_id} in {timeout} s")


async def _bench(args: argparse.Namespace, home: Path, otlp: str) -> dict[str, Any]:
    from workers.stack import wait_listening

    ingest = args.ingest == "on" or args.with_ingest
    home.mkdir(parents=True)
    stack = EmbeddedStack(home, otlp_endpoint=otlp)
    async with stack as settings:
        names = ["edge", "queries", *(["ingest"] if ingest else [])]
        for name in names:
            await stack.role(name, log_level="WARNING")
        await wait_listening(settings.http_addr, timeout=60)
        env = _Env(settings, settings.admin_token_path.read_text().strip(), ingest)
        # Until queries answers, a viewer is refused (1013): one short run to settle.
        await _settled(env)
        load = os.getloadavg()
        results: dict[str, Any] = {}
        processes = stack.pids() | {"bench_and_worker": os.getpid()}
        for side in ("raw_nats", "jetscan"):
            before = cpu.sample(processes)
            rounds = [
                await _measure(side, env, args.lines, 0, 1, timed=False) for _ in range(args.rounds)
            ]
            used = {k: v - before[k] for k, v in cpu.sample(processes).items()}
            lines = args.lines * args.rounds
            paced = [
                await _measure(side, env, int(args.rate * args.seconds), args.rate, 1, timed=True)
                for _ in range(args.rounds)
            ]
            results[side] = {
                "throughput": _median(rounds, "lines_per_s"),
                "latency": _median(paced, "p99_ms"),
                "fan_out": await _measure(side, env, args.fan_lines, 0, args.viewers, False),
                "cpu_us_per_line": {k: round(v * 1e6 / lines, 1) for k, v in used.items() if v}
                | {"total": round(sum(used.values()) * 1e6 / lines, 1)},
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
        jetscan = results["jetscan"]
        return {
            "bench": "stream",
            "cpus": os.cpu_count(),
            "load_average_before_after": [round(load[0], 2), round(os.getloadavg()[0], 2)],
            "ingest_running": ingest,
            "targets": TARGETS,
            "headline": {
                "lines_per_s": jetscan["throughput"]["lines_per_s"],
                "lines_per_s_rounds": jetscan["throughput"]["rounds"],
                "p99_ms_at_2000": jetscan["latency"]["p99_ms"],
                "p99_ms_rounds": jetscan["latency"]["rounds"],
                "ingest_lag_s_max": max(
                    [r.get("ingest_lag_s", 0.0) for r in (*rounds, *paced)], default=0.0
                ),
                "cpu_us_per_line": jetscan["cpu_us_per_line"]["total"],
            },
            "results": results,
            "replay": replay,
            "jetscan_vs_raw_lines_per_s": round(
                jetscan["throughput"]["lines_per_s"]
                / results["raw_nats"]["throughput"]["lines_per_s"],
                3,
            ),
        }


def _median(rounds: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The round with the median `key`, and every round's `key` (the spread) as `rounds`."""
    ordered = sorted(rounds, key=lambda r: r[key])
    return ordered[len(ordered) // 2] | {"rounds": [r[key] for r in rounds]}


async def _settled(env: _Env) -> None:
    from websockets.asyncio.client import connect

    scan_id = await env.scan()
    headers = {"Authorization": f"Bearer {env.token}"}
    for _ in range(60):
        async with connect(f"ws://{env.http}/ws/scans/{scan_id}", additional_headers=headers) as ws:
            with contextlib.suppress(ConnectionClosed):
                if message_decoder.decode(await ws.recv()).type == "status":
                    return
        await asyncio.sleep(0.5)
    raise RuntimeError("the edge never served a console")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
