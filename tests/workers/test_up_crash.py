"""`jetscan up` killed with SIGKILL, alone or with its servers (a power loss), then started
again on the same home: it serves, and its next clean stop leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

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
