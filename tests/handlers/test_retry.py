"""Retries after jetscan lost a job, on the real stack: a launcher killed with SIGKILL mid-scan
(its job dies with it) and the scan succeeds on attempt 2, with one console numbered 1, 2, 3...
and no finding twice; a scanner that fails by itself is not run again."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import nats
import pytest

from contracts import subjects
from contracts.gen.jetscan import v1
from tests.conftest import ROOT, TERMINAL, Stack, all_findings, scan_service, wait_status
from tests.handlers.test_lifecycle import job_pids, nmap_request, second_attempt_running

pytestmark = pytest.mark.slow


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


def standin(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


async def launcher_process(stack: Stack, home: Path, programs: str) -> asyncio.subprocess.Process:
    """`jetscan run launcher` as its own process, on the stack's servers."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "JETSCAN_HOME": str(home),
        "JETSCAN_NATS_URL": stack.settings.nats_url,
        "JETSCAN_DATABASE_URL": stack.settings.database_url,
        "JETSCAN_JOB_USER": "",
        "JETSCAN_PROGRAMS": programs,
        "JETSCAN_MAX_RUNNING": "4",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "run", "launcher", cwd=ROOT, env=env
    )


async def console_seqs(stack: Stack, scan_id: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT seq, text FROM scan_output WHERE scan_id = $1 ORDER BY seq", scan_id
        )
    finally:
        await conn.close()
    return [(r["seq"], r["text"]) for r in rows]


async def ran_twice_as_one_scan(
    stack: Stack, scans: v1.ScanServiceStub, scan_id: str, port: int
) -> list[v1.Finding]:
    """A scan that succeeded on attempt 2 of a stand-in nmap: its open `port` found once, one
    console numbered 1, 2, 3... with each attempt's lines, the second's after a marker naming
    it. Its findings."""
    found = await all_findings(scans, scan_id)
    ports = [(f.host, f.port) for f in found]
    assert ports.count(("127.0.0.1", port)) == 1, ports
    lines = await console_seqs(stack, scan_id)
    seqs = [seq for seq, _ in lines]
    assert seqs == list(range(1, len(seqs) + 1)), f"console not contiguous: {seqs}"
    texts = [text for _, text in lines]
    assert texts.count("stand-in: about to scan") == 2, texts
    marker = next(i for i, t in enumerate(texts) if t.startswith("[jetscan] attempt 2"))
    assert 0 < marker < texts.index("stand-in: about to scan", marker)
    return found


async def test_a_scan_whose_launcher_was_killed_succeeds_on_attempt_two(
    stack: Stack, scans: v1.ScanServiceStub, open_port: int, tmp_path: Path
) -> None:
    nmap = shutil.which("nmap")
    assert nmap is not None
    slow = standin(tmp_path, "nmap", f'echo "stand-in: about to scan"\nsleep 6\nexec {nmap} "$@"')
    await stack.stop_role("launcher")
    first = await launcher_process(stack, tmp_path / "home", f"nmap={slow}")
    second: asyncio.subprocess.Process | None = None
    try:
        started = await scans.start_scan(nmap_request(open_port))
        running = await wait_status(scans, started.id, {v1.ScanStatus.RUNNING}, within=60)
        assert running.attempts == 1
        jobs = job_pids(started.id)
        assert jobs
        first.send_signal(signal.SIGKILL)
        await first.wait()
        # The job dies with its launcher (PR_SET_PDEATHSIG): nothing finishes the scan but
        # liveness, which finds it silent and puts it back in the queue.
        for _ in range(50):
            if not job_pids(started.id):
                break
            await asyncio.sleep(0.1)
        assert job_pids(started.id) == []
        second = await launcher_process(stack, tmp_path / "home", f"nmap={slow}")
        bound = stack.settings.heartbeat_timeout * 2 + 60
        done = await wait_status(scans, started.id, TERMINAL, within=bound)
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 30)
        await stack.start_role("launcher")
    assert done.status == v1.ScanStatus.SUCCEEDED, done.error
    assert done.attempts == 2
    found = await ran_twice_as_one_scan(stack, scans, started.id, open_port)
    assert done.finding_counts.info == len(found)


async def test_a_scanner_that_fails_by_itself_is_not_run_again(
    stack: Stack, scans: v1.ScanServiceStub, open_port: int, tmp_path: Path
) -> None:
    broken = standin(tmp_path, "nmap", 'echo "stand-in: giving up" >&2\nexit 1')
    programs = {**stack.settings.programs, "nmap": broken}
    async with stack.launcher_with(programs=programs):
        started = await scans.start_scan(nmap_request(open_port))
        done = await wait_status(scans, started.id, TERMINAL, within=60)
    assert done.status == v1.ScanStatus.FAILED
    assert "scanner failed" in done.error, done.error
    assert done.attempts == 1


async def test_a_retry_event_seen_again_leaves_the_running_attempt_alone(
    stack: Stack, scans: v1.ScanServiceStub, open_port: int, tmp_path: Path
) -> None:
    nmap = shutil.which("nmap")
    assert nmap is not None
    slow = standin(tmp_path, "nmap", f'echo "stand-in: about to scan"\nsleep 6\nexec {nmap} "$@"')
    programs = {**stack.settings.programs, "nmap": slow}
    async with stack.launcher_with(programs=programs):
        started = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, started.id, {v1.ScanStatus.RUNNING}, within=60)
        for pid in job_pids(started.id):
            os.kill(pid, signal.SIGKILL)
        second = await second_attempt_running(scans, started.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        # The launcher sees the retry's event once more (a redelivery after a crash before
        # its ack): attempt 2 was launched already, so nothing is stopped or queued.
        nc = await nats.connect(stack.settings.nats_url)
        try:
            js = nc.jetstream()
            raw = await js.get_last_msg("EVENTS", subjects.scan_event(started.id, "queued"))
            ack = await js.publish(raw.subject, raw.data or b"")
            consumer = "launcher-scan-events"
            while (await js.consumer_info("EVENTS", consumer)).ack_floor.stream_seq < ack.seq:
                assert loop.time() < deadline + 30, "the launcher never took the event"
                await asyncio.sleep(0.05)
        finally:
            await nc.drain()
        assert set(job_pids(started.id)) == set(second), "the running attempt was stopped"
        done = await wait_status(scans, started.id, TERMINAL, within=60)
    assert done.status == v1.ScanStatus.SUCCEEDED, done.error
    assert done.attempts == 2
