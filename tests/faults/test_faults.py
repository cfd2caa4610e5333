"""Faults injected into the real stack in the middle of a burst of scans: each process
killed with SIGKILL and restarted, nats-server killed, PostgreSQL stopped for 20 s, then all
of it in one run. After each: every scan ends within its deadline plus the liveness bound,
none is lost or made twice, no finding is doubled, every console runs 1..n without a gap."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.faults.harness import (
    Burst,
    FaultStack,
    new_burst,
    open_ports,
    settle,
    start_all,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

log = logging.getLogger(__name__)

SCANS = 8
ROLES = ["launcher", "ingest", "queries", "scheduler", "reports", "edge"]


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FaultStack]:
    s = FaultStack(tmp_path_factory.mktemp("faults"))
    try:
        await s.start()
        yield s
    finally:
        await s.close()


async def mid_flight(stack: FaultStack, burst: Burst, timeout: float = 60) -> None:
    """Until a scan of `burst` is running: the fault then lands with jobs in flight."""
    assert stack.settings is not None
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            running = await conn.fetchval(
                "SELECT count(*) FROM scans WHERE request_id = ANY($1) AND status = 'running'",
                list(burst.requests.values()),
            )
            if running:
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"no scan of the burst was running within {timeout} s")


async def run_burst(stack: FaultStack, fault: object, *, all_succeed: bool) -> str:
    """Start a burst, inject `fault` (an async callable) once it is in flight, then check."""
    async with open_ports(SCANS) as ports:
        burst = new_burst(ports)
        starting = asyncio.create_task(start_all(stack.grpc, stack.admin_token, burst))
        await mid_flight(stack, burst)
        await fault()  # type: ignore[operator]
        await starting
        # A client that never heard back sends its StartScans again, with the same ids:
        # each must answer with the scan it already started.
        again = Burst(burst.requests)
        await start_all(stack.grpc, stack.admin_token, again)
        assert stack.settings is not None
        outcome = await settle(stack.settings.database_url, burst, all_succeed=all_succeed)
    assert again.scan_ids == burst.scan_ids, f"a repeated StartScan started another scan: {outcome}"
    assert outcome.rows == SCANS and not outcome.problems, str(outcome)
    log.info("checked: %s", outcome)
    return str(outcome)


def sigkill(stack: FaultStack, *names: str) -> object:
    async def fault() -> None:
        for name in names:
            await stack.kill(name)
        await asyncio.sleep(1)
        for name in names:
            await stack.restart(name)

    return fault


@pytest.mark.parametrize("role", ROLES)
async def test_sigkill_of_a_role_mid_burst(stack: FaultStack, role: str) -> None:
    # The launcher's jobs are its children and die with it: lost to jetscan, not to their
    # scanners, so each runs again (JETSCAN_MAX_ATTEMPTS 2) and must succeed all the same.
    await run_burst(stack, sigkill(stack, role), all_succeed=True)


async def test_sigkill_of_nats_server_mid_burst(stack: FaultStack) -> None:
    await run_burst(stack, sigkill(stack, "nats-server"), all_succeed=True)


async def test_postgres_stopped_for_20_s_mid_burst(stack: FaultStack) -> None:
    async def fault() -> None:
        await stack.stop_postgres()
        await asyncio.sleep(20)
        await stack.restart("postgres")

    await run_burst(stack, fault, all_succeed=True)


async def test_every_fault_in_one_burst(stack: FaultStack) -> None:
    async def fault() -> None:
        for role in ROLES:
            await sigkill(stack, role)()  # type: ignore[operator]
        await sigkill(stack, "nats-server")()  # type: ignore[operator]
        await stack.stop_postgres()
        await asyncio.sleep(20)
        await stack.restart("postgres")

    # The launcher's death loses the jobs once; their second attempt must succeed.
    await run_burst(stack, fault, all_succeed=True)
