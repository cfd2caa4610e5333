"""`jetscan up` killed with SIGKILL, alone or with its servers (a power loss), then started
again on the same home: it serves, the scans it had in flight all end (see tests/faults for
the checks), and its next clean stop leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from grpclib.client import Channel

from contracts.gen.jetscan import v1
from tests.faults.harness import Burst, new_burst, open_ports, settle, start_all
from tests.workers.test_up import base_env, home, processes_under, reflection, serving_within, start

pytestmark = pytest.mark.slow
__all__ = ["home"]  # the fixture, shared with test_up

LIST_SCANS = ("call", "jetscan.v1.ScanService/ListScans", "{}")


async def killed(home: Path) -> None:
    """SIGKILL `jetscan up`: the embedded nats-server dies with it, PostgreSQL does not."""
    run = await start(base_env(home))
    await serving_within(run.grpc, 30)
    run.proc.kill()
    await run.proc.wait()


async def serves_and_stops_clean(home: Path) -> None:
    run = await start(base_env(home))
    try:
        await serving_within(run.grpc, 30)
        admin = (home / "admin.token").read_text().strip()
        # The queries role answers from PostgreSQL: the database is really there.
        assert await reflection(run.grpc, *LIST_SCANS, admin) == {"reply": {}}
    finally:
        assert await run.stop() == 0
    assert processes_under(home) == []


async def test_after_a_sigkill_up_resumes_and_then_stops_postgres(home: Path) -> None:
    await killed(home)
    survivors = processes_under(home)
    assert any("postgres" in p for p in survivors), survivors
    # Before the fix, pgserver kept the dead jetscan in its list of users and from then on
    # never stopped PostgreSQL: the clean stop below left it running.
    await serves_and_stops_clean(home)


async def test_after_a_power_loss_with_a_reused_pid_up_starts_postgres_again(home: Path) -> None:
    await killed(home)
    for entry in processes_under(home):
        os.kill(int(entry.split(":", 1)[0]), signal.SIGKILL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while processes_under(home):
        assert loop.time() < deadline, processes_under(home)
        await asyncio.sleep(0.05)
    # The stale postmaster.pid (and the socket's lock file) now name a live process that is
    # not PostgreSQL, as when the pid was reused after a reboot; pgserver alone took it for
    # the server, and PostgreSQL refuses to start beside a live socket lock.
    locks = [home / "postgres" / "postmaster.pid", *(home / "postgres").glob(".s.PGSQL.*.lock")]
    assert len(locks) == 2, locks
    stranger = await asyncio.create_subprocess_exec("sleep", "120")
    try:
        for lock in locks:
            lines = lock.read_text().splitlines()
            lock.write_text("\n".join([str(stranger.pid), *lines[1:]]) + "\n")
        await serves_and_stops_clean(home)
        assert stranger.returncode is None  # left alone
    finally:
        stranger.kill()
        await stranger.wait()


def database_url(home: Path) -> str:
    """The embedded PostgreSQL's URL, from its postmaster.pid (socket folder: 5th line)."""
    socket_dir = (home / "postgres" / "postmaster.pid").read_text().splitlines()[4]
    return f"postgresql://postgres:@/postgres?host={socket_dir}"


async def kill_all_under(home: Path) -> None:
    for entry in processes_under(home):
        os.kill(int(entry.split(":", 1)[0]), signal.SIGKILL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while processes_under(home):
        assert loop.time() < deadline, processes_under(home)
        await asyncio.sleep(0.05)


async def until_in_flight(grpc: tuple[str, int], token: str, burst: Burst) -> None:
    """Return once the burst is under way and not over: a scan launching or running, or one
    ended while another still waits its turn. `jetscan up` runs one job per target at once
    (JETSCAN_MAX_PER_TARGET 1) and a one-port scan takes a fraction of a second, so a poll can
    miss every RUNNING while the burst is still in flight."""
    active = {v1.ScanStatus.LAUNCHING, v1.ScanStatus.RUNNING}
    ended = {v1.ScanStatus.SUCCEEDED, v1.ScanStatus.FAILED}
    channel = Channel(*grpc)
    seen: list[v1.ScanStatus] = []
    try:
        stub = v1.ScanServiceStub(channel, metadata={"authorization": f"Bearer {token}"})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline:
            seen = [
                (await stub.get_scan(v1.GetScanRequest(id=scan_id), timeout=15)).status
                for scan_id in burst.scan_ids.values()
            ]
            if active & set(seen) or (ended & set(seen) and v1.ScanStatus.QUEUED in seen):
                return
            await asyncio.sleep(0.05)
    finally:
        channel.close()
    raise AssertionError(f"the burst was never in flight within 60 s: {seen}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("power_loss", [False, True], ids=["up-killed", "power-loss"])
async def test_a_burst_in_flight_ends_after_up_is_killed_and_started_again(
    home: Path, power_loss: bool
) -> None:
    # The liveness bound the burst is held to (the defaults allow a 2-minute image pull).
    timeouts = {"JETSCAN_HEARTBEAT_TIMEOUT": "10", "JETSCAN_LAUNCH_TIMEOUT": "20"}
    async with open_ports(6) as ports:
        burst = new_burst(ports)
        run = await start(base_env(home) | timeouts, stderr=home.parent / "up-1.log")
        try:
            await serving_within(run.grpc, 30)
            token = (home / "admin.token").read_text().strip()
            await start_all(run.grpc, token, burst)
            await until_in_flight(run.grpc, token, burst)
        finally:
            run.proc.kill()
            await run.proc.wait()
        if power_loss:
            await kill_all_under(home)
        run = await start(base_env(home) | timeouts, stderr=home.parent / "up-2.log")
        try:
            await serving_within(run.grpc, 60)
            again = Burst(burst.requests)
            await start_all(run.grpc, token, again)
            # The jobs died with `up` (they are its children): lost to jetscan, not to their
            # scanners, so each runs again after the restart and must succeed.
            outcome = await settle(database_url(home), burst, all_succeed=True)
        finally:
            assert await run.stop() == 0
    assert again.scan_ids == burst.scan_ids, f"a repeated StartScan started another scan: {outcome}"
    assert outcome.rows == len(ports) and not outcome.problems, str(outcome)
    assert processes_under(home) == [], f"left running after a clean stop; {outcome}"
