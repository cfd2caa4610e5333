"""A whole jetscan stack as separate processes, each of which a test may kill: nats-server,
PostgreSQL and every role as `jetscan run ROLE`; a burst of fast nmap scans through it, and
the checks every fault test makes once the burst is over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from grpclib import GRPCError
from grpclib.client import Channel

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.settings import ROLES, Address, Settings
from tests.conftest import ROOT, free_port
from workers.embedded import NatsServer, Postgres
from workers.stack import prepare, wait_listening

TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")
# The liveness bound the stack runs with: a job silent this long is failed as lost.
HEARTBEAT_TIMEOUT = 10.0
LAUNCH_TIMEOUT = 20.0
DEADLINE = 60


class FaultStack:
    """nats-server on a fixed port (so a restart is found again), PostgreSQL, and each role
    in its own process; `kill` and `restart` any of them by name."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.nats = NatsServer(home / "nats", port=free_port())
        self.postgres = Postgres(home / "postgres")
        self.roles: dict[str, asyncio.subprocess.Process] = {}
        self.settings: Settings | None = None

    async def start(self) -> Settings:
        self.settings = Settings(
            home=self.home,
            grpc_addr=Address("127.0.0.1", free_port()),
            http_addr=Address("127.0.0.1", free_port()),
            nats_url=await self.nats.start(),
            database_url=await self.postgres.start(),
        )
        await prepare(self.settings)
        for role in ROLES:
            await self.start_role(role)
        await wait_listening(self.settings.grpc_addr, timeout=60)
        return self.settings

    @property
    def grpc(self) -> tuple[str, int]:
        assert self.settings is not None
        return self.settings.grpc_addr.host, self.settings.grpc_addr.port

    @property
    def admin_token(self) -> str:
        assert self.settings is not None
        return self.settings.admin_token_path.read_text().strip()

    async def start_role(self, role: str) -> None:
        assert self.settings is not None
        s = self.settings
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "JETSCAN_HOME": str(s.home),
            "JETSCAN_NATS_URL": s.nats_url,
            "JETSCAN_DATABASE_URL": s.database_url,
            "JETSCAN_GRPC_ADDR": str(s.grpc_addr),
            "JETSCAN_HTTP_ADDR": str(s.http_addr),
            "JETSCAN_HEARTBEAT_TIMEOUT": str(int(HEARTBEAT_TIMEOUT)),
            "JETSCAN_LAUNCH_TIMEOUT": str(int(LAUNCH_TIMEOUT)),
            "JETSCAN_START_RATE": "off",
        }
        log = (self.home / f"{role}.log").open("ab")
        try:
            self.roles[role] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "workers.cli",
                "run",
                role,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()

    async def kill(self, name: str) -> None:
        """SIGKILL a role, `nats-server` or `postgres` (its server process)."""
        if name == "nats-server":
            pid = self.nats.pid
        elif name == "postgres":
            pid = int((self.home / "postgres" / "postmaster.pid").read_text().split()[0])
        else:
            pid = self.roles[name].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        if name in self.roles:
            await self.roles[name].wait()
        elif name == "nats-server":
            await self.nats.stop()  # reaps it

    async def restart(self, name: str) -> None:
        if name == "nats-server":
            await self.nats.start()
        elif name == "postgres":
            await self.postgres.start()
        else:
            await self.start_role(name)

    async def stop_postgres(self) -> None:
        """A clean (fast) shutdown, as an operator's `pg_ctl stop` does it."""
        await self.postgres.stop()

    async def close(self) -> None:
        for proc in self.roles.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.roles.values():
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await self.postgres.stop()
        await self.nats.stop()


@contextlib.asynccontextmanager
async def open_ports(count: int) -> AsyncIterator[list[int]]:
    """`count` TCP ports on 127.0.0.1 that accept and hang up: one open port per scan, so
    each scan has a finding of its own."""

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    servers = [await asyncio.start_server(hang_up, "127.0.0.1", 0) for _ in range(count)]
    try:
        yield [s.sockets[0].getsockname()[1] for s in servers]
    finally:
        for server in servers:
            server.close()


@dataclass
class Burst:
    """Scans started by request id (port -> request id); the ids the edge answered with."""

    requests: dict[int, str]
    scan_ids: dict[str, str] = field(default_factory=dict)  # request id -> scan id


def request(port: int, request_id: str) -> v1.StartScanRequest:
    return v1.StartScanRequest(
        target="127.0.0.1",
        tool="nmap",
        config=Struct.from_dict({"ports": str(port), "reverse_dns": False, "timing": 4}),
        deadline_seconds=DEADLINE,
        request_id=request_id,
    )


async def start_all(grpc: tuple[str, int], token: str, burst: Burst, timeout: float = 90) -> None:
    """StartScan for every request of `burst` not answered yet, retried (with the same
    request id, as a client does) until the edge answers each or `timeout` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        missing = [(p, r) for p, r in burst.requests.items() if r not in burst.scan_ids]
        if not missing:
            return
        with contextlib.suppress(OSError, GRPCError, TimeoutError):
            channel = Channel(*grpc)
            try:
                stub = v1.ScanServiceStub(channel, metadata={"authorization": f"Bearer {token}"})
                for port, rid in missing:
                    reply = await stub.start_scan(request(port, rid), timeout=15)
                    burst.scan_ids[rid] = reply.id
            finally:
                channel.close()
        assert loop.time() < deadline, (
            f"the edge answered {len(burst.scan_ids)} of {len(burst.requests)} StartScans"
        )
        await asyncio.sleep(0.5)


def new_burst(ports: list[int]) -> Burst:
    return Burst({port: uuid.uuid4().hex for port in ports})


@dataclass
class Outcome:
    """What a burst came to, as counted by `settle`; `str()` is for assertion messages."""

    requested: int
    rows: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    findings: int = 0
    console_lines: int = 0
    complete_consoles: int = 0
    problems: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # of scans that did not succeed

    def __str__(self) -> str:
        return (
            f"{self.requested} scans requested, {self.rows} scan rows,"
            f" statuses {dict(self.statuses)}, {self.findings} findings,"
            f" {self.console_lines} console lines in {self.complete_consoles} gapless consoles"
            f" from 1; errors {dict(self.errors)}; problems: {self.problems or 'none'}"
        )


async def settle(database_url: str, burst: Burst, *, all_succeed: bool) -> Outcome:
    """Wait for every scan of `burst` to end (within its deadline plus the liveness bound)
    and for ingest to hold its whole console, then count; `problems` lists what is wrong.

    `all_succeed`: every scan must succeed (the fault spared the jobs, or jetscan ran the
    ones it lost again).
    """
    loop = asyncio.get_running_loop()
    bound = DEADLINE + HEARTBEAT_TIMEOUT + LAUNCH_TIMEOUT + 30  # 30: this machine's slack
    deadline = loop.time() + bound
    rids = list(burst.requests.values())
    out = Outcome(requested=len(rids))
    conn = await _connect(database_url, deadline)
    try:
        while True:
            rows = await conn.fetch(
                "SELECT id, request_id, status, error FROM scans WHERE request_id = ANY($1)", rids
            )
            if len(rows) >= len(rids) and all(r["status"] in TERMINAL for r in rows):
                break
            if loop.time() > deadline:
                waiting = Counter(r["status"] for r in rows)
                out.problems.append(f"not terminal within {bound:.0f} s: {dict(waiting)}")
                break
            await asyncio.sleep(0.5)
        out.rows = len(rows)
        out.statuses = Counter(r["status"] for r in rows)
        by_rid = Counter(r["request_id"] for r in rows)
        if dups := [rid for rid, n in by_rid.items() if n > 1]:
            out.problems.append(f"{len(dups)} requests made several scans")
        if lost := set(rids) - set(by_rid):
            out.problems.append(f"{len(lost)} requests made no scan")
        for r in rows:
            if burst.scan_ids.get(r["request_id"], r["id"]) != r["id"]:
                out.problems.append(f"scan {r['id']} is not the one StartScan answered")
        if all_succeed and out.statuses["succeeded"] != len(rids):
            errors = sorted({r["error"][:80] for r in rows if r["status"] != "succeeded"})
            out.problems.append(f"not every scan succeeded: {errors}")
        port_of = {
            burst.scan_ids.get(r["request_id"], ""): p
            for p, r in (
                (p, next((x for x in rows if x["request_id"] == rid), None))
                for p, rid in burst.requests.items()
            )
            if r is not None
        }
        await _check_findings(conn, rows, port_of, deadline, out)
        succeeded = {r["id"] for r in rows if r["status"] == "succeeded"}
        await _check_consoles(conn, [r["id"] for r in rows], succeeded, deadline, out)
        out.errors = Counter(r["error"][:100] for r in rows if r["status"] != "succeeded")
    finally:
        await conn.close()
    return out


async def _connect(url: str, deadline: float) -> asyncpg.Connection:
    while True:
        try:
            return await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _check_findings(
    conn: asyncpg.Connection,
    rows: list[asyncpg.Record],
    port_of: dict[str, int],
    deadline: float,
    out: Outcome,
) -> None:
    """Each succeeded scan saw exactly one finding, its own open port (a result may be
    applied a little after the scan shows succeeded: waited for until `deadline`)."""
    loop = asyncio.get_running_loop()
    succeeded = [r["id"] for r in rows if r["status"] == "succeeded"]
    while True:
        found = await conn.fetch(
            "SELECT s.id AS scan_id, f.body->>'fingerprint' AS fingerprint,"
            " f.body->>'port' AS port FROM scan_findings sf JOIN scans s ON s.key = sf.scan_key"
            " JOIN findings f ON f.key = sf.finding_key WHERE s.id = ANY($1)",
            succeeded,
        )
        wrong = {
            scan_id: ports
            for scan_id in succeeded
            if (ports := [f["port"] for f in found if f["scan_id"] == scan_id])
            != [str(port_of.get(scan_id))]
        }
        if not wrong or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    out.findings = len(found)
    if wrong:
        out.problems.append(f"{len(wrong)} scans without exactly their one finding: {wrong}")
    fingerprints = Counter(f["fingerprint"] for f in found)
    if dups := [fp for fp, n in fingerprints.items() if n > 1]:
        out.problems.append(f"{len(dups)} findings shared by several scans (duplicates)")


async def _check_consoles(
    conn: asyncpg.Connection,
    scan_ids: list[str],
    succeeded: set[str],
    deadline: float,
    out: Outcome,
) -> None:
    """Every console, as ingest keeps it, is numbered 1..n without a gap; a succeeded
    scan's has lines (a job killed early may have printed none)."""
    loop = asyncio.get_running_loop()
    while True:
        stats = await conn.fetch(
            "SELECT scan_id, count(*) AS n, min(seq) AS first, max(seq) AS last"
            " FROM scan_output WHERE scan_id = ANY($1) GROUP BY scan_id",
            scan_ids,
        )
        broken = [s["scan_id"] for s in stats if s["first"] != 1 or s["last"] != s["n"]]
        ends = {s["scan_id"]: s["n"] for s in stats}
        missing = [i for i in succeeded if i not in ends]
        if (not broken and not missing) or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    out.console_lines = sum(ends.values())
    out.complete_consoles = len(scan_ids) - len(broken) - len(missing)
    if broken:
        out.problems.append(f"{len(broken)} consoles have gaps or do not start at 1")
    if missing:
        out.problems.append(f"{len(missing)} scans have no console at all")
