"""StartScan throughput and latency: jetscan's edge against a bare grpclib echo server.

Each server runs in a child process of its own, so the client driving the load (this
process) never competes with them for the GIL:

- echo: grpclib serving a ScanService whose StartScan returns a `v1.Scan` at once. Same
  generated message types, same process model, no auth, no bus: the ceiling.
- jetscan: an embedded stack as `jetscan up` builds it (nats-server, PostgreSQL, streams,
  migrations, admin token), the edge in one process and ingest and queries in their own
  (`jetscan run ROLE`). No launcher: StartScan only publishes the command, and no nmap
  ever starts. nats-server fsyncs every JetStream write before acking it
  (`sync_interval: always`, jetscan's durability rule).
- jetscan-traced: the jetscan side with tracing on (OTEL_EXPORTER_OTLP_ENDPOINT set): every
  StartScan is a span exported over OTLP/HTTP to a receiver in its own process
  (`bench/otlp.py`). The jetscan side is the same code with tracing off, which must cost
  nothing: compare it with the last published figures (docs/architecture.md).
- jetscan-sync-2m: the same stack with nats-server's own default, an fsync every two
  minutes, which can lose acknowledged commands on power failure. Not a configuration
  jetscan ships: it is here to show what `always` costs.

Each concurrency level runs a fixed number of calls (cut short by `--time-limit`), every
client on its own connection, after a warm-up that is not counted. The result is one JSON
object; `ratio` is jetscan's accepted/s over echo's at the same level (`ratio_sync_2m` the
same for jetscan-sync-2m); `traced_ratio` is jetscan-traced's accepted/s over jetscan's.
`client_cpu` near 1.0 means the client process, not the server, was the limit at that level.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.exceptions import StreamTerminatedError
from grpclib.server import Server

from bench.otlp import receiver_process
from bench.processes import REPO, EmbeddedStack, free_port
from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.settings import Address

SIDES = ("echo", "jetscan", "jetscan-traced", "jetscan-sync-2m")
NATS_SYNC = {"jetscan": "always", "jetscan-traced": "always", "jetscan-sync-2m": "2m"}
TARGET_RATIO = 0.5
_CALL_TIMEOUT = 10.0
_READY_TIMEOUT = 120.0  # the first PostgreSQL start initialises a cluster


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    if args.serve:
        return _serve(args.serve, Path(args.dir), args.otlp or "")
    levels = sorted(set(args.clients))
    plan = {c: args.requests_single if c == 1 else args.requests for c in levels}
    sides = args.only or list(SIDES)
    with tempfile.TemporaryDirectory(prefix="jetscan-bench-", dir=_temp_root()) as tmp:
        figures = asyncio.run(_bench(sides, plan, args.time_limit, Path(tmp)))
    results: dict[str, dict[str, Any]] = {}
    for c in levels:
        row: dict[str, Any] = {side: figures[side][c] for side in sides}
        echo = row["echo"]["accepted_per_s"] if "echo" in row else 0
        for side, key in (("jetscan", "ratio"), ("jetscan-sync-2m", "ratio_sync_2m")):
            if echo and side in row:
                row[key] = round(row[side]["accepted_per_s"] / echo, 2)
        if "jetscan" in row and "jetscan-traced" in row:
            row["traced_ratio"] = round(
                row["jetscan-traced"]["accepted_per_s"] / row["jetscan"]["accepted_per_s"], 3
            )
        results[str(c)] = row
    print(
        json.dumps(
            {
                "bench": "start",
                "cpus": os.cpu_count(),
                "requests": {str(c): n for c, n in plan.items()},
                "target_ratio": TARGET_RATIO,
                "results": results,
            }
        )
    )
    return 0


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench start")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--requests-single", type=int, default=2000, help="calls at 1 client")
    parser.add_argument("--requests", type=int, default=4000, help="calls at other levels")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per level")
    parser.add_argument("--only", choices=SIDES, nargs="+", help="measure these sides only")
    parser.add_argument("--serve", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--otlp", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _temp_root() -> str:
    # pgserver runs PostgreSQL as an unprivileged user when started as root, and that user
    # cannot enter /root: keep the stack's data elsewhere even if TMPDIR points there.
    root = Path(tempfile.gettempdir()).resolve()
    return "/tmp" if root.is_relative_to("/root") else str(root)  # noqa: S108


# --- the load ---------------------------------------------------------------------------


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


async def _bench(
    sides: Sequence[str], plan: dict[int, int], time_limit: float, tmp: Path
) -> dict[str, dict[int, dict[str, Any]]]:
    figures: dict[str, dict[int, dict[str, Any]]] = {}
    # One side at a time: the idle one would still hold memory and wake for health checks.
    for side in sides:
        async with _server(side, tmp / side) as (address, token, pid):
            figures[side] = {
                clients: await _level(address, token, clients, total, time_limit, pid)
                for clients, total in plan.items()
            }
    return figures


async def _level(
    address: Address, token: str, clients: int, total: int, time_limit: float, pid: int
) -> dict[str, Any]:
    config = Struct.from_dict({"ports": "1"})
    run = uuid.uuid4().hex[:8]

    def requests(phase: str, n: int) -> list[v1.StartScanRequest]:
        # Unique request ids: a repeated id would be deduplicated, not measured.
        return [
            v1.StartScanRequest(
                target="127.0.0.1",
                tool="nmap",
                config=config,
                request_id=f"bench-{run}-{clients}-{phase}-{i}",
            )
            for i in range(n)
        ]

    metadata = {"authorization": f"Bearer {token}"}
    channels = [Channel(address.host, address.port) for _ in range(clients)]
    try:
        stubs = [
            v1.ScanServiceStub(ch, metadata=metadata, timeout=_CALL_TIMEOUT) for ch in channels
        ]
        # Connections, the edge's first command publish and PostgreSQL's first plans are
        # start-up costs, not throughput.
        await _load(stubs, requests("warm", max(4 * clients, 100)), time_limit)
        measured = requests("run", total)
        server_cpu = _cpu_seconds(pid)
        cpu, start = time.process_time(), time.perf_counter()
        tally = await _load(stubs, measured, time_limit)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        server_cpu = _cpu_seconds(pid) - server_cpu
    finally:
        for ch in channels:
            ch.close()
    lat = sorted(tally.latencies)
    done = len(lat) + sum(tally.errors.values())
    return {
        "accepted_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": _percentile_ms(lat, 0.50),
        "p99_ms": _percentile_ms(lat, 0.99),
        "accepted": len(lat),
        "errors": dict(tally.errors),
        "cut_short": done < total,
        "seconds": round(elapsed, 2),
        "client_cpu": round(cpu / elapsed, 2),
        # CPU of the server process (the edge, for jetscan) per accepted call: steadier than
        # throughput on a machine others share.
        "server_cpu_us_per_call": round(server_cpu / max(len(lat), 1) * 1e6, 1),
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(
    stubs: Sequence[v1.ScanServiceStub], requests: Sequence[v1.StartScanRequest], limit: float
) -> _Tally:
    tally = _Tally()
    pending: Iterator[v1.StartScanRequest] = iter(requests)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit

    async def client(stub: v1.ScanServiceStub) -> None:
        # One shared iterator: `next` runs between awaits, so each request goes out once.
        for request in pending:
            if loop.time() > deadline:
                return
            start = time.perf_counter()
            try:
                await stub.start_scan(request)
            except GRPCError as exc:
                tally.errors[exc.status.name] += 1
                continue
            except (OSError, StreamTerminatedError, TimeoutError):
                tally.errors["CONNECTION"] += 1
                continue
            tally.latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(client(stub) for stub in stubs))
    return tally


def _percentile_ms(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    rank = max(math.ceil(q * len(ordered)) - 1, 0)  # nearest-rank
    return round(ordered[rank] * 1000, 2)


@contextlib.asynccontextmanager
async def _server(side: str, home: Path) -> AsyncIterator[tuple[Address, str, int]]:
    """A child process serving `side`; yields its gRPC address, a token it accepts, its pid."""
    async with contextlib.AsyncExitStack() as stack:
        otlp: list[str] = []
        tally: dict[str, int] = {}
        if side == "jetscan-traced":
            endpoint, tally = await stack.enter_async_context(receiver_process())
            otlp = ["--otlp", endpoint]
        async with _server_process(side, home, otlp) as served:
            yield served
    if side == "jetscan-traced" and not tally.get("spans"):
        raise RuntimeError("the traced side exported no spans")


@contextlib.asynccontextmanager
async def _server_process(
    side: str, home: Path, extra: list[str]
) -> AsyncIterator[tuple[Address, str, int]]:
    home.mkdir(parents=True)
    log_path = home / "server.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.start",
            "--serve",
            side,
            "--dir",
            str(home),
            *extra,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
        )
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), _READY_TIMEOUT)
        except TimeoutError:
            line = b""
        if not line:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the {side} server did not start; its log ends:\n{tail}")
        ready = json.loads(line)
        yield Address(ready["host"], ready["port"]), ready["token"], proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# --- the servers (child processes) ------------------------------------------------------


class EchoScans(v1.ScanServiceBase):
    """StartScan answered at once with a queued scan of the same shape jetscan returns."""

    async def start_scan(self, message: v1.StartScanRequest) -> v1.Scan:
        return v1.Scan(
            id=message.request_id,
            target=message.target,
            domain=message.target,
            tool=message.tool,
            config=message.config,
            status=v1.ScanStatus.QUEUED,
            created_at=datetime.now(UTC),
            requested_by="bench",
            finding_counts=v1.FindingCounts(),
            deadline_seconds=message.deadline_seconds or 3600,
        )


def _serve(side: str, home: Path, otlp: str) -> int:
    # INFO, as `jetscan up` logs by default: its logging is part of what a request costs.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if side == "echo":
            await _serve_echo(stop)
        else:
            await _serve_jetscan(home, stop, NATS_SYNC[side], otlp)

    from workers.telemetry import tracing_to

    with tracing_to(otlp, "jetscan-edge"):
        asyncio.run(run())
    return 0


async def _serve_echo(stop: asyncio.Event) -> None:
    server = Server([EchoScans()])
    address = Address("127.0.0.1", free_port())
    await server.start(address.host, address.port)
    try:
        _announce(address, "echo-accepts-any-token")
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


async def _serve_jetscan(home: Path, stop: asyncio.Event, nats_sync: str, otlp: str) -> None:
    from workers.roles import supervise
    from workers.stack import wait_listening

    stack = EmbeddedStack(home, nats_sync=nats_sync, otlp_endpoint=otlp)
    async with stack as settings:
        # As a cluster runs them: the edge in this process, ingest and queries in their own
        # (`jetscan run ROLE`). No launcher: nothing starts jobs, so no scan ever runs.
        for name in ("ingest", "queries"):
            await stack.role(name)
        roles = asyncio.create_task(supervise(settings, ["edge"], stop))
        listening = asyncio.create_task(wait_listening(settings.grpc_addr, timeout=60))
        await asyncio.wait({roles, listening}, return_when=asyncio.FIRST_COMPLETED)
        if listening.done() and listening.exception() is None:
            _announce(settings.grpc_addr, settings.admin_token_path.read_text().strip())
        else:
            listening.cancel()
        await roles


def _announce(address: Address, token: str) -> None:
    sys.stdout.write(json.dumps({"host": address.host, "port": address.port, "token": token}))
    sys.stdout.write("\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
