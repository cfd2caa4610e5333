"""Real NATS JetStream and PostgreSQL for the whole session, on random ports in temp dirs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from grpclib.client import Channel
from nats.aio.client import Client

from contracts.gen.jetscan import v1
from contracts.settings import Address, Settings
from handlers import database, topology
from workers import tokens
from workers.embedded import NatsServer, Postgres
from workers.stack import wait_listening

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tmp_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jetscan-home")


@pytest.fixture(scope="session")
async def nats_url(tmp_home: Path) -> AsyncIterator[str]:
    server = NatsServer(tmp_home / "nats", port=0)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


@pytest.fixture(scope="session")
async def database_url(tmp_home: Path) -> AsyncIterator[str]:
    pg = Postgres(tmp_home / "postgres")
    url = await pg.start()
    conn = await asyncpg.connect(url)
    try:
        await database.migrate(conn)
    finally:
        await conn.close()
    try:
        yield url
    finally:
        await pg.stop()


@pytest.fixture(scope="session")
async def applied(nats_url: str) -> str:
    nc = await nats.connect(nats_url)
    try:
        await topology.apply(nc.jetstream(), topology.load())
    finally:
        await nc.drain()
    return nats_url


@pytest.fixture
async def nc(applied: str) -> AsyncIterator[Client]:
    client = await nats.connect(applied)
    try:
        yield client
    finally:
        await client.drain()


@pytest.fixture(scope="session")
def settings(tmp_home: Path, applied: str, database_url: str) -> Settings:
    return Settings(
        home=tmp_home,
        grpc_addr=Address("127.0.0.1", free_port()),
        http_addr=Address("127.0.0.1", free_port()),
        nats_url=applied,
        database_url=database_url,
        # Five of the job's 2 s heartbeats: a loaded two-core machine delays a beat by
        # seconds, and a scan failed as lost for that would fail an unrelated test.
        heartbeat_timeout=10.0,
        launch_timeout=20.0,
        passthrough={k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ},
    )


class Stack:
    """Every role of jetscan running in this process against the session's servers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin_token = ""
        self._stops: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start_role(self, role: str) -> None:
        from workers.roles import supervise

        stop = asyncio.Event()
        self._stops[role] = stop
        self._tasks[role] = asyncio.create_task(supervise(self.settings, [role], stop))

    async def stop_role(self, role: str) -> None:
        self._stops.pop(role).set()
        await asyncio.wait_for(self._tasks.pop(role), 15)

    async def stop(self) -> None:
        for role in list(self._tasks):
            await self.stop_role(role)

    @contextlib.asynccontextmanager
    async def launcher_with(self, **changes: Any) -> AsyncIterator[Settings]:
        """The launcher role replaced, for the block, by one whose settings have `changes`
        (stand-in programs, another executor); the usual one runs again after. Replaced, not
        added: two launchers on one durable consumer would split the start commands."""
        from workers.roles import supervise

        settings = msgspec.structs.replace(self.settings, **changes)
        await self.stop_role("launcher")
        stop = asyncio.Event()
        task = asyncio.create_task(supervise(settings, ["launcher"], stop))
        try:
            yield settings
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await self.start_role("launcher")


@pytest.fixture(scope="session")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    from contracts.settings import ROLES

    s = Stack(msgspec.structs.replace(settings))
    nc = await nats.connect(settings.nats_url)
    try:
        await tokens.ensure_admin_token(nc.jetstream(), settings.admin_token_path)
    finally:
        await nc.drain()
    s.admin_token = settings.admin_token_path.read_text().strip()
    for role in ROLES:
        await s.start_role(role)
    await wait_listening(settings.grpc_addr, timeout=20)
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def open_port() -> AsyncIterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and hangs up: what nmap finds open."""

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def start_job(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python -m workers.job` with exactly `env`, as a launcher starts it."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.job",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish_job(proc: asyncio.subprocess.Process, timeout: float = 90) -> tuple[int, str]:
    """The job's exit code and stderr, killing it if it outlives `timeout`."""
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@contextlib.asynccontextmanager
async def scan_service(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    """A ScanService client of the stack's edge, as the admin, 15 s per call."""
    addr = stack.settings.grpc_addr
    channel = Channel(addr.host, addr.port)
    try:
        yield v1.ScanServiceStub(
            channel, metadata={"authorization": f"Bearer {stack.admin_token}"}, timeout=15
        )
    finally:
        channel.close()


TERMINAL = {
    v1.ScanStatus.SUCCEEDED,
    v1.ScanStatus.FAILED,
    v1.ScanStatus.CANCELLED,
    v1.ScanStatus.TIMED_OUT,
}


async def wait_status(
    scans: v1.ScanServiceStub, scan_id: str, want: set[v1.ScanStatus], within: float = 60
) -> v1.Scan:
    """The scan once its status is in `want`; fails if it ends otherwise or takes longer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        scan = await scans.get_scan(v1.GetScanRequest(id=scan_id))
        if scan.status in want:
            return scan
        assert scan.status not in TERMINAL, f"scan ended {scan.status}: {scan.error}"
        assert loop.time() < deadline, f"scan still {scan.status} after {within}s"
        await asyncio.sleep(0.1)


async def all_findings(scans: v1.ScanServiceStub, scan_id: str) -> list[v1.Finding]:
    """Every finding of the scan, page after page."""
    found: list[v1.Finding] = []
    token = ""
    while True:
        page = await scans.list_findings(
            v1.ListFindingsRequest(scan_id=scan_id, page_size=100, page_token=token)
        )
        found += page.findings
        if not (token := page.next_page_token):
            return found


async def run_jetscan(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`jetscan ARGS` as a user runs it: a real process; returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # Generous: a `scan start --follow` or `scan cancel --wait` runs a whole scan's worth, and
    # a loaded two-core machine is slow at it.
    out, err = await asyncio.wait_for(proc.communicate(), 150)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def k8s_settings(stack: Stack, raw_sockets: bool) -> Settings:
    """The stack's settings as a Kubernetes deployment's edge has them, on ports of its own."""
    return msgspec.structs.replace(
        stack.settings,
        executor="kubernetes",
        k8s_raw_sockets=raw_sockets,
        grpc_addr=Address("127.0.0.1", free_port()),
        http_addr=Address("127.0.0.1", free_port()),
    )


@contextlib.asynccontextmanager
async def edge_with(settings: Settings) -> AsyncIterator[Address]:
    """The edge role alone, with `settings`, beside the session's stack."""
    from workers.roles import supervise

    stop = asyncio.Event()
    task = asyncio.create_task(supervise(settings, ["edge"], stop))
    try:
        await wait_listening(settings.grpc_addr, timeout=30)
        yield settings.grpc_addr
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
