"""A burst of scans through the whole pipeline, against the same jobs run directly.

For each `JETSCAN_MAX_RUNNING` (default 4 and 8), on a fresh embedded stack (nats-server with
`sync_interval: always`, PostgreSQL, streams, migrations):

- direct: the same number of `python -m workers.job` processes started straight from this
  process with the env contract, at most LIMIT at once (a semaphore), while no role runs:
  half before the pipeline, half after it (the two halves' rates are shown).
  The jobs publish their console, heartbeats and results to the same nats-server. This is
  the ceiling: what the machine does with the jobs alone.
- jetscan: the roles as `jetscan run ROLE` processes (edge, launcher with the limit, ingest,
  queries); the scans are started with StartScan (16 clients) and each is done when its
  terminal event is published (a core NATS subscription on `evt.scan.*.*`).

Every scan is nmap (connect scan of one port, no DNS) against a listener on 127.0.0.K, K in
1..16, so the per-target limit (one nmap job per target) holds back nothing. The largest
number of jobs running at once is measured twice, independently of the launcher's own
bookkeeping: from the processes (every 50 ms, the `workers.job` processes whose environment
names a scan of the run) and from the lifecycle events (the most scans between their
`launching` and terminal events at once). Printed as one JSON object; `ratio` is jetscan's
scans/s over direct's at the same limit (target: >= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import nats
from grpclib.client import Channel

from bench.processes import REPO, EmbeddedStack
from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.jobs import job_environ
from contracts.scans import ScanEvent, ScanStatus, StartScan
from workers.stack import wait_listening

TARGETS = [f"127.0.0.{k}" for k in range(1, 17)]
_event = msgspec.json.Decoder(ScanEvent)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def live_jobs(scan_ids: set[str]) -> int:
    """Scans of `scan_ids` with a live `workers.job` process (read from /proc)."""
    found: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"workers.job" not in (entry / "cmdline").read_bytes():
                continue
            if (entry / "stat").read_text().split()[2] == "Z":
                continue
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(b"JETSCAN_SCAN_ID="):
                scan = item.split(b"=", 1)[1].decode()
                if scan in scan_ids:
                    found.add(scan)
    return len(found)


class Sampler:
    def __init__(self) -> None:
        self.scans: set[str] = set()
        self.most = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Sampler]:
        async def loop() -> None:
            while True:
                self.most = max(self.most, await asyncio.to_thread(live_jobs, set(self.scans)))
                await asyncio.sleep(0.05)

        task = asyncio.create_task(loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def listeners() -> AsyncIterator[int]:
    """One port open on every target address: accepts and hangs up."""

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    first = await asyncio.start_server(hang_up, TARGETS[0], 0)
    port = first.sockets[0].getsockname()[1]
    servers = [first] + [await asyncio.start_server(hang_up, t, port) for t in TARGETS[1:]]
    try:
        yield port
    finally:
        for server in servers:
            server.close()


def config(port: int) -> dict[str, Any]:
    return {"ports": str(port), "reverse_dns": False}


async def direct(nats_url: str, n: int, limit: int, port: int) -> dict[str, Any]:
    """The jobs alone: n processes, at most `limit` at once."""
    gate = asyncio.Semaphore(limit)
    sampler = Sampler()
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    codes: list[int] = []
    ends: list[float] = []

    async def one(i: int) -> None:
        cmd = StartScan(
            scan_id=uuid.uuid4().hex,
            target=TARGETS[i % len(TARGETS)],
            domain="127.0.0.1/32",
            tool="nmap",
            config=config(port),
            deadline_seconds=120,
            requested_by="bench",
            requested_at=datetime.now(UTC),
        )
        async with gate:
            sampler.scans.add(cmd.scan_id)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "workers.job",
                cwd=REPO,
                env=base | job_environ(cmd, nats_url),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            codes.append(await proc.wait())
            ends.append(time.monotonic())

    t0 = time.monotonic()
    async with sampler.running():
        await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.monotonic() - t0
    # Every job is "asked for" at t0, as a burst of StartScans nearly is.
    latencies = [e - t0 for e in ends]
    return {
        "scans": n,
        "succeeded": codes.count(0),
        "seconds": round(elapsed, 2),
        "scans_per_s": round(n / elapsed, 2),
        "p50_s": round(percentile(latencies, 0.5), 2),
        "p99_s": round(percentile(latencies, 0.99), 2),
        "max_running_processes": sampler.most,
    }


def combined(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two direct runs as one: scans and seconds added, percentiles of the slower half."""
    seconds = a["seconds"] + b["seconds"]
    slower = a if a["p50_s"] >= b["p50_s"] else b
    return {
        "scans": a["scans"] + b["scans"],
        "succeeded": a["succeeded"] + b["succeeded"],
        "seconds": round(seconds, 2),
        "scans_per_s": round((a["scans"] + b["scans"]) / seconds, 2),
        "p50_s": slower["p50_s"],
        "p99_s": slower["p99_s"],
        "max_running_processes": max(a["max_running_processes"], b["max_running_processes"]),
        "halves_scans_per_s": [a["scans_per_s"], b["scans_per_s"]],
    }


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of [start, end) intervals that overlap."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


async def pipeline(stack: EmbeddedStack, n: int, limit: int, port: int) -> dict[str, Any]:
    settings = stack.settings
    assert settings is not None
    env = {"JETSCAN_MAX_RUNNING": str(limit), "JETSCAN_JOB_USER": ""}
    for role in ("queries", "ingest", "launcher", "edge"):
        await stack.role(role, log_level="WARNING", extra_env=env)
    await wait_listening(settings.grpc_addr, timeout=60)
    token = settings.admin_token_path.read_text().strip()
    nc = await nats.connect(settings.nats_url)
    started: dict[str, float] = {}
    ended: dict[str, tuple[float, ScanStatus]] = {}
    launched: dict[str, datetime] = {}
    finished: dict[str, datetime] = {}
    done = asyncio.Event()
    sampler = Sampler()

    async def on_event(msg: Any) -> None:
        event = _event.decode(msg.data)
        if event.status is ScanStatus.LAUNCHING:
            launched.setdefault(event.scan_id, event.at)
        elif event.status.terminal and event.scan_id not in ended:
            ended[event.scan_id] = (time.monotonic(), event.status)
            finished[event.scan_id] = event.at
            if len(ended) >= n:
                done.set()

    await nc.subscribe("evt.scan.*.*", cb=on_event)
    channel = Channel(settings.grpc_addr.host, settings.grpc_addr.port)
    stub = v1.ScanServiceStub(channel, metadata={"authorization": f"Bearer {token}"}, timeout=60)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def client() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            req = v1.StartScanRequest(
                target=TARGETS[i % len(TARGETS)],
                tool="nmap",
                config=Struct.from_dict(config(port)),
                deadline_seconds=120,
            )
            t = time.monotonic()
            scan = await stub.start_scan(req)
            started[scan.id] = t
            sampler.scans.add(scan.id)

    t0 = time.monotonic()
    try:
        async with sampler.running():
            await asyncio.gather(*(client() for _ in range(16)))
            await asyncio.wait_for(done.wait(), 3600)
    finally:
        channel.close()
        await nc.drain()
    elapsed = max(t for t, _ in ended.values()) - t0
    latencies = [ended[i][0] - started[i] for i in started if i in ended]
    statuses = [s for _, s in ended.values()]
    spans = [(launched[i].timestamp(), finished[i].timestamp()) for i in launched if i in finished]
    return {
        "scans": n,
        "succeeded": statuses.count(ScanStatus.SUCCEEDED),
        "seconds": round(elapsed, 2),
        "scans_per_s": round(n / elapsed, 2),
        "p50_s": round(percentile(latencies, 0.5), 2),
        "p99_s": round(percentile(latencies, 0.99), 2),
        "max_running_processes": sampler.most,
        "max_running_events": most_at_once(spans),
    }


async def one_limit(n: int, limit: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jetscan-burst-") as home:
        async with listeners() as port:
            stack = EmbeddedStack(Path(home))
            settings = await stack.__aenter__()
            try:
                # Half the direct jobs before the pipeline and half after (its roles stopped),
                # so a change in the machine's load during the run weighs on both sides.
                before = await direct(settings.nats_url, n // 2, limit, port)
                jetscan = await pipeline(stack, n, limit, port)
                await stack.stop_roles()
                after = await direct(settings.nats_url, n - n // 2, limit, port)
            finally:
                await stack.__aexit__()
    base = combined(before, after)
    return {
        "max_running": limit,
        "direct": base,
        "jetscan": jetscan,
        "ratio": round(jetscan["scans_per_s"] / base["scans_per_s"], 3),
        "limit_held": max(jetscan["max_running_processes"], jetscan["max_running_events"]) <= limit,
    }


async def run(n: int, limits: list[int]) -> dict[str, Any]:
    runs = []
    for limit in limits:
        runs.append(await one_limit(n, limit))
        # Progress, for a long run: each limit's figures as soon as they are known.
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return {
        "bench": "burst",
        "scans": n,
        "tool": "nmap -sT one port, loopback, 16 targets",
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "runs": runs,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench burst", description=__doc__)
    parser.add_argument("--scans", type=int, default=1000, help="scans per run (default 1000)")
    parser.add_argument(
        "--limits", default="4,8", help="JETSCAN_MAX_RUNNING values, comma-separated"
    )
    args = parser.parse_args(argv)
    limits = [int(x) for x in args.limits.split(",")]
    print(json.dumps(asyncio.run(run(args.scans, limits)), indent=2))
    return 0
