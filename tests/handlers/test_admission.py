"""Admission on the real stack: the global and per-target limits counted from the job processes
themselves, fairness between requesters, queue positions, cancelling a waiting scan, and the
queue surviving a restart of the launcher."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest

from contracts.gen.jetscan import v1
from contracts.settings import Settings
from edge.auth import Role
from tests.conftest import TERMINAL, Stack, scan_service, wait_status
from tests.edge.test_grpc import until_token
from tests.handlers.test_lifecycle import nmap_request, slow_nmap
from workers import tokens

pytestmark = pytest.mark.slow


def jobs_running(scan_ids: set[str]) -> list[tuple[str, str, str]]:
    """(scan id, tool, target) of every live job process of `scan_ids`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().split()[2] == "Z":
                continue
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        env = dict(v.split(b"=", 1) for v in raw.split(b"\0") if b"=" in v)
        scan = env.get(b"JETSCAN_SCAN_ID", b"").decode()
        # The job, not the scanner it started (which gets no JETSCAN_ variables anyway).
        if scan in scan_ids and b"workers.job" in (entry / "cmdline").read_bytes():
            found.append((scan, env[b"JETSCAN_TOOL"].decode(), env[b"JETSCAN_TARGET"].decode()))
    return found


class Watch:
    """Samples the job processes of the scans it is told about, every 20 ms."""

    def __init__(self) -> None:
        self.scans: set[str] = set()
        self.most = 0
        self.most_per_target = 0
        self.seen: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            # Distinct scans: a job forking its scanner is two processes until the exec.
            jobs = set(await asyncio.to_thread(jobs_running, set(self.scans)))
            self.most = max(self.most, len(jobs))
            per = Counter((tool, target) for _, tool, target in jobs)
            self.most_per_target = max([self.most_per_target, *per.values()])
            self.seen |= {scan for scan, _, _ in jobs}
            await asyncio.sleep(0.02)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Watch]:
        self._task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def stub_for(
    stack: Stack, scans: v1.ScanServiceStub, role: Role, name: str
) -> v1.ScanServiceStub:
    """A ScanService client with a token of its own (so its scans have their own requester),
    on the admin client's channel."""
    nc = await nats.connect(stack.settings.nats_url)
    try:
        token = await tokens.create(nc.jetstream(), role, name)
    finally:
        await nc.drain()
    await until_token(stack, token, accepted=True)
    return v1.ScanServiceStub(
        scans.channel, metadata={"authorization": f"Bearer {token}"}, timeout=15
    )


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


async def all_end(scans: v1.ScanServiceStub, ids: list[str], within: float = 120) -> list[v1.Scan]:
    return [await wait_status(scans, i, TERMINAL, within=within) for i in ids]


async def test_a_burst_never_runs_more_jobs_than_the_limit(
    stack: Stack, scans: v1.ScanServiceStub, open_port: int
) -> None:
    async with stack.launcher_with(max_running=3), Watch().running() as watch:
        ids: list[str] = []
        for _ in range(12):
            started = await scans.start_scan(nmap_request(open_port))
            ids.append(started.id)
            watch.scans.add(started.id)
        done = await all_end(scans, ids)
    assert [d.status for d in done] == [v1.ScanStatus.SUCCEEDED] * 12, [d.error for d in done]
    assert watch.seen == set(ids), "every job was seen running"
    assert watch.most <= 3, f"{watch.most} jobs ran at once with JETSCAN_MAX_RUNNING=3"
    # The limit, not the scans' own pace, held them back: it was reached.
    assert watch.most >= 2, f"at most {watch.most} job ran at once: the burst proves nothing"
    assert all(d.attempts == 1 for d in done)


async def test_one_tool_scans_one_target_once_at_a_time(
    stack: Stack, scans: v1.ScanServiceStub, open_port: int
) -> None:
    async with stack.launcher_with(max_running=8, max_per_target=1), Watch().running() as watch:
        same = [await scans.start_scan(nmap_request(open_port)) for _ in range(4)]
        other = nmap_request(open_port)
        other.target = "127.0.0.2"
        elsewhere = await scans.start_scan(other)
        for s in [*same, elsewhere]:
            watch.scans.add(s.id)
        # The scan of another host does not wait behind the four of 127.0.0.1.
        first = await wait_status(scans, elsewhere.id, TERMINAL, within=60)
        still = [await scans.get_scan(v1.GetScanRequest(id=s.id)) for s in same]
        done = await all_end(scans, [s.id for s in same])
    assert first.status == v1.ScanStatus.SUCCEEDED, first.error
    assert any(s.status not in TERMINAL for s in still), "the other host waited for the four"
    assert [d.status for d in done] == [v1.ScanStatus.SUCCEEDED] * 4
    assert watch.most_per_target == 1, f"{watch.most_per_target} nmap jobs on one target at once"
    assert watch.most >= 1


async def test_one_requesters_burst_does_not_starve_anothers_scan(
    stack: Stack, scans: v1.ScanServiceStub, open_port: int
) -> None:
    a = await stub_for(stack, scans, Role.OPERATOR, "burst-a")
    b = await stub_for(stack, scans, Role.OPERATOR, "single-b")
    async with stack.launcher_with(max_running=1):
        burst = [await a.start_scan(nmap_request(open_port)) for _ in range(8)]
        single = await b.start_scan(nmap_request(open_port))
        last = burst[-1].id
        positions: list[int] = []
        b_position = (await b.get_scan(v1.GetScanRequest(id=single.id))).queue_position
        # Another requester's scan joining ahead pushes A's back by one: once B's has
        # launched, A's last scan only moves forward.
        await wait_status(b, single.id, {v1.ScanStatus.RUNNING, *TERMINAL}, within=60)
        while True:
            view = await a.get_scan(v1.GetScanRequest(id=last))
            positions.append(view.queue_position)
            if view.status != v1.ScanStatus.QUEUED:
                break
            await asyncio.sleep(0.05)
        done = [await wait_status(a, s.id, TERMINAL, within=120) for s in burst]
        b_done = await wait_status(b, single.id, TERMINAL, within=120)
    started = sorted([*done, b_done], key=lambda s: s.started_at)
    order = [s.id for s in started]
    # B's one scan is in the second round at worst: before all but (at most) the burst's
    # first two, which may have launched before B asked.
    assert order.index(single.id) <= 2, f"B's scan started {order.index(single.id) + 1}th of 9"
    assert 1 <= b_position <= 2, f"B's scan was at position {b_position}"
    assert b_done.requested_by == "single-b" and done[0].requested_by == "burst-a"
    queued = positions[:-1]
    assert queued and queued[0] >= 3, f"the burst's last scan was at {queued[:1]}"
    assert queued == sorted(queued, reverse=True), f"positions went up: {queued}"
    assert positions[-1] == 0
    assert (await a.get_scan(v1.GetScanRequest(id=last))).queue_position == 0


async def test_a_waiting_scan_is_cancelled_at_once_and_never_launched(
    stack: Stack, scans: v1.ScanServiceStub, open_port: int
) -> None:
    async with stack.launcher_with(max_running=1), Watch().running() as watch:
        busy = await scans.start_scan(slow_nmap())
        await wait_status(scans, busy.id, {v1.ScanStatus.RUNNING})
        waiting = await scans.start_scan(nmap_request(open_port))
        watch.scans.add(waiting.id)
        view = await scans.get_scan(v1.GetScanRequest(id=waiting.id))
        assert view.status == v1.ScanStatus.QUEUED and view.queue_position == 1
        await scans.cancel_scan(v1.CancelScanRequest(id=waiting.id))
        # While the slot is still taken by the slow scan: at once, not when a slot frees.
        done = await wait_status(scans, waiting.id, {v1.ScanStatus.CANCELLED}, within=10)
        assert (await scans.get_scan(v1.GetScanRequest(id=busy.id))).status == (
            v1.ScanStatus.RUNNING
        )
        await scans.cancel_scan(v1.CancelScanRequest(id=busy.id))
        await wait_status(scans, busy.id, {v1.ScanStatus.CANCELLED}, within=30)
        # The freed slot would have gone to the cancelled scan, had it still been waiting.
        after = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, after.id, {v1.ScanStatus.SUCCEEDED}, within=60)
    assert waiting.id not in watch.seen, "the cancelled scan's job ran"
    assert done.attempts == 0 and done.queue_position == 0 and done.started_at is None


class Launchers:
    """The launcher role with settings of the test's own, stopped and started at will, in
    place of the stack's (two launchers on one durable would split the commands)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        from workers.roles import supervise

        self._stop = asyncio.Event()
        self._task = asyncio.create_task(supervise(self.settings, ["launcher"], self._stop))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)
            self._task = None


@contextlib.asynccontextmanager
async def own_launcher(stack: Stack, **changes: object) -> AsyncIterator[Launchers]:
    launchers = Launchers(msgspec.structs.replace(stack.settings, **changes))
    await stack.stop_role("launcher")
    launchers.start()
    try:
        yield launchers
    finally:
        await launchers.stop()
        await stack.start_role("launcher")


async def test_the_queue_survives_a_restart_of_the_launcher(
    stack: Stack, scans: v1.ScanServiceStub, open_port: int
) -> None:
    async with own_launcher(stack, max_running=1) as launcher:
        busy = await scans.start_scan(slow_nmap())
        await wait_status(scans, busy.id, {v1.ScanStatus.RUNNING})
        queued = [await scans.start_scan(nmap_request(open_port)) for _ in range(3)]
        await launcher.stop()
        for s in queued:
            view = await scans.get_scan(v1.GetScanRequest(id=s.id))
            assert view.status == v1.ScanStatus.QUEUED, view.status
            assert view.queue_position >= 1
        launcher.start()
        # The slow scan was interrupted by the stop: jetscan's doing, so it runs again, and
        # first (it is the oldest).
        again = await wait_status(scans, busy.id, {v1.ScanStatus.RUNNING}, within=60)
        assert again.attempts == 2
        for s in queued:
            view = await scans.get_scan(v1.GetScanRequest(id=s.id))
            assert view.status == v1.ScanStatus.QUEUED, view.status
        await scans.cancel_scan(v1.CancelScanRequest(id=busy.id))
        done = await all_end(scans, [s.id for s in queued])
    assert [d.status for d in done] == [v1.ScanStatus.SUCCEEDED] * 3, [d.error for d in done]
    assert [d.attempts for d in done] == [1, 1, 1]
