"""Scheduled fires at scale: N schedules due in the same minute, 1 and 3 scheduler replicas.

An embedded stack (nats-server with `sync_interval: always`, PostgreSQL, streams,
migrations); no launcher, so no scan runs. For each replica count, N schedules with
`* * * * *` are inserted due at the next minute boundary (plain SQL: the bench measures
firing, not creating), `jetscan run scheduler` processes start, and once every run is
published the start commands are read back from COMMANDS. The lag of a fire is its start
command's JetStream timestamp minus its nominal time; duplicates count start commands
beyond one per scan id.

Baseline, in the same run right before each fire: a bare `publish_async` of N StartScan
commands (with message ids) from one client, all awaited; its lag is each stored
timestamp minus the moment the burst began. `p99_above_bare` is the scheduler's p99 minus
that bare p99 (target < 1 s). With `sync_interval: always` both are bound by nats-server's
fsync per stored message, so on a loaded machine both are seconds for 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bench.processes import EmbeddedStack
from contracts import subjects, wire
from contracts.scans import StartScan
from contracts.schedules import run_scan_id

TARGET_ABOVE_BARE = 1.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _stored(js: JetStreamContext, prefix: str) -> list[tuple[str, datetime]]:
    """(subject, stored time) of every start command whose scan id starts with `prefix`
    (NATS wildcards match whole tokens only, so the prefix is checked here)."""
    sub = await js.pull_subscribe(
        "cmd.scan.*.start",
        stream="COMMANDS",
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
    )
    out: list[tuple[str, datetime]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=1)
            except TimeoutError:
                return out
            for m in msgs:
                if m.subject.split(".")[2].startswith(prefix):
                    out.append((m.subject, m.metadata.timestamp))
    finally:
        await sub.unsubscribe()


def _command(scan_id: str) -> StartScan:
    return StartScan(
        scan_id=scan_id,
        target="127.0.0.1",
        domain="127.0.0.1",
        tool="nmap",
        config={"ports": "1"},
        deadline_seconds=600,
        requested_by="bench",
        requested_at=datetime.now(UTC),
        trigger="api",
    )


async def _bare(js: JetStreamContext, n: int) -> dict[str, Any]:
    # Scan ids are hex in jetscan; the bench's own prefix keeps them apart.
    prefix = f"bare{int(time.time())}"
    ids = [f"{prefix}x{i}" for i in range(n)]
    payloads = [wire.encode(_command(i)) for i in ids]
    began = datetime.now(UTC)
    t0 = time.perf_counter()
    acks = [
        await js.publish_async(
            subjects.scan_start(i), p, headers={"Nats-Msg-Id": subjects.msg_id("scan", i, "start")}
        )
        for i, p in zip(ids, payloads, strict=True)
    ]
    await asyncio.gather(*acks)
    seconds = time.perf_counter() - t0
    lags = [(t - began).total_seconds() for _, t in await _stored(js, prefix)]
    return {
        "commands": len(lags),
        "seconds": round(seconds, 3),
        "lag_p50": round(_quantile(lags, 0.5), 3),
        "lag_p99": round(_quantile(lags, 0.99), 3),
    }


async def _fire(
    embedded: EmbeddedStack, replicas: int, n: int, run: int, log_level: str
) -> dict[str, Any]:
    settings = embedded.settings
    assert settings is not None
    conn = await asyncpg.connect(settings.database_url)
    nc = await nats.connect(settings.nats_url)
    procs = []
    prefix = f"bench{run}r{replicas}s"
    try:
        js = nc.jetstream()
        now: datetime = await conn.fetchval("SELECT now()")
        nominal = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if (nominal - now).total_seconds() < 20:
            nominal += timedelta(minutes=1)
        await conn.execute(
            "INSERT INTO schedules (id, target, domain, tool, config, deadline_seconds, cron,"
            " catchup_window_seconds, created_at, updated_at, next_fire_at, due_at)"
            # One target each (127.x.y.z), so every fire's scope check is its own.
            " SELECT $1 || g, '127.' || (g / 65536) || '.' || (g / 256 % 256) || '.' || (g % 256),"
            " '127.0.0.0/8', 'nmap', '{\"ports\": \"1\"}', 600,"
            " '* * * * *', 3600, now(), now(), $2, $2 FROM generate_series(1, $3) AS g",
            prefix,
            nominal,
            n,
        )
        for _ in range(replicas):
            procs.append(await embedded.role("scheduler", log_level=log_level))
        deadline = time.monotonic() + (nominal - now).total_seconds() + 120
        while time.monotonic() < deadline:
            done = await conn.fetchval(
                "SELECT count(*) FROM schedule_runs WHERE state = 'published'"
                " AND schedule_id LIKE $1 || '%'",
                prefix,
            )
            if done >= n:
                break
            await asyncio.sleep(0.5)
        ids = {run_scan_id(f"{prefix}{i}", nominal) for i in range(1, n + 1)}
        stored = [(s, t) for s, t in await _stored(js, "") if s.split(".")[2] in ids]
        lags = [(t - nominal).total_seconds() for _, t in stored]
        return {
            "replicas": replicas,
            "schedules": n,
            "fired": len({s for s, _ in stored}),
            "duplicates": len(stored) - len({s for s, _ in stored}),
            "lag_p50": round(_quantile(lags, 0.5), 3) if lags else None,
            "lag_p99": round(_quantile(lags, 0.99), 3) if lags else None,
            "lag_max": round(max(lags), 3) if lags else None,
        }
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
                await p.wait()
        # They fire every minute: gone before the next run, or it would fire them too.
        await conn.execute("DELETE FROM schedules WHERE id LIKE $1 || '%'", prefix)
        await nc.drain()
        await conn.close()


async def _bench(n: int, tmp: Path, replica_counts: list[int], log_level: str) -> dict[str, Any]:
    embedded = EmbeddedStack(tmp)
    runs = []
    async with embedded as settings:
        for i, replicas in enumerate(replica_counts):
            # A bare burst right before each fire: load on this machine drifts.
            nc = await nats.connect(settings.nats_url)
            try:
                bare = await _bare(nc.jetstream(), n)
            finally:
                await nc.drain()
            run = await _fire(embedded, replicas, n, i, log_level)
            run["bare_publish_async"] = bare
            if run["lag_p99"] is not None:
                run["p99_above_bare"] = round(run["lag_p99"] - bare["lag_p99"], 3)
                run["meets_target"] = (
                    run["p99_above_bare"] < TARGET_ABOVE_BARE and run["duplicates"] == 0
                )
            runs.append(run)
    return {
        "bench": "schedules",
        "scheduler": runs,
        "target": f"p99 < {TARGET_ABOVE_BARE} s above the bare publish, 0 duplicates",
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench schedules", description=__doc__)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--replicas", default="1,3", help="scheduler processes per run")
    parser.add_argument("--log-level", default="WARNING", help="of the scheduler processes")
    args = parser.parse_args(argv)
    counts = [int(r) for r in args.replicas.split(",")]
    with tempfile.TemporaryDirectory(prefix="jetscan-bench-", dir="/tmp") as tmp:
        result = asyncio.run(_bench(args.schedules, Path(tmp), counts, args.log_level))
    print(json.dumps(result, indent=2))
    return 0
