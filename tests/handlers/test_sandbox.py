"""Local scan jobs run confined: their own user, no new privileges, resource limits."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.gen.jetscan import v1
from contracts.scans import StartScan
from handlers.launcher import sandbox
from handlers.launcher.sandbox import Sandbox
from tests.conftest import Stack, all_findings, scan_service, wait_status
from tests.edge.test_live import watch
from tests.handlers.test_lifecycle import job_pids, nmap_request
from workers import jobuser

USER = "jetscan-job"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def _cmd(**config: object) -> StartScan:
    return StartScan(
        scan_id="s1",
        target="127.0.0.1",
        domain="127.0.0.1",
        tool="nmap",
        config=dict(config),
        deadline_seconds=60,
        requested_by="t",
        requested_at=datetime.now(UTC),
    )


def test_a_job_runs_through_setpriv_as_its_user_without_capabilities() -> None:
    box = Sandbox(uid=999, gid=998)
    argv = sandbox.argv(box, _cmd(), ["python", "-m", "workers.job"])
    assert argv == [
        "/usr/bin/setpriv",
        "--no-new-privs",
        "--reuid=999",
        "--regid=998",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        "python",
        "-m",
        "workers.job",
    ]
    assert sandbox.environ(_cmd()) == {}


def test_a_syn_scan_gets_exactly_net_raw() -> None:
    argv = sandbox.argv(Sandbox(uid=999, gid=998), _cmd(scan_type="syn"), ["x"])
    for option in ("--inh-caps", "--ambient-caps", "--bounding-set"):
        assert f"{option}=-all,+net_raw" in argv
    assert sandbox.environ(_cmd(scan_type="syn")) == {"NMAP_PRIVILEGED": "1"}


def test_without_a_user_to_switch_to_only_no_new_privileges() -> None:
    assert sandbox.argv(Sandbox(), _cmd(), ["x"]) == [
        "/usr/bin/setpriv",
        "--no-new-privs",
        "--",
        "x",
    ]


def test_limits_follow_the_memory_setting_and_the_deadline() -> None:
    got = sandbox.limits(Sandbox(memory_bytes=512 << 20), _cmd(), grace=10)
    assert got[resource.RLIMIT_AS] == 512 << 20
    assert got[resource.RLIMIT_CPU] == 80
    assert got[resource.RLIMIT_CORE] == 0
    assert got[resource.RLIMIT_NOFILE] == sandbox.MAX_OPEN_FILES


def test_an_unknown_or_root_user_is_refused() -> None:
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    with pytest.raises(sandbox.SandboxError, match="does not exist"):
        sandbox.resolve("jetscan-no-such-user", 512)
    with pytest.raises(sandbox.SandboxError, match="is root"):
        sandbox.resolve("root", 512)


@pytest.fixture(scope="module")
def standins() -> Iterator[Path]:
    """Stand-in programs in a folder the job user may enter (pytest's are root's, 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="jetscan-standins-"))
    folder.chmod(0o755)
    scripts = {
        # Holds still, so the test can read the job's /proc while it runs.
        "sleeper": "import time\ntime.sleep(60)\n",
        # Allocates far past any job's memory limit.
        "hog": "import sys\nblock = bytearray(8 << 30)\nsys.exit(0)\n",
    }
    for name, body in scripts.items():
        path = folder / name
        # The system's Python: the job user may not be able to reach the venv's interpreter.
        path.write_text(f"#!{PYTHON}\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | 0o044)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def _proc(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def _field(status: str, key: str) -> str:
    return next(
        line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith(key)
    )


@pytest.mark.slow
async def test_a_local_job_runs_as_the_job_user_with_its_limits(
    stack: Stack, standins: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    jobuser.ensure(USER)
    import pwd

    uid = pwd.getpwnam(USER).pw_uid
    programs = {**stack.settings.programs, "nmap": str(standins / "sleeper")}
    confined = stack.launcher_with(job_user=USER, job_memory_mb=1024, programs=programs)
    async with confined, scan_service(stack) as scans:
        started = await scans.start_scan(nmap_request(80))
        await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        # The job, and the scanner it started once that runs: both confined.
        while not (pids := _with_children(job_pids(started.id))) or len(pids) < 2:
            assert loop.time() < deadline, f"no job with a scanner: {pids}"
            await asyncio.sleep(0.1)
        for pid in pids:
            status = _proc(pid, "status")
            assert _field(status, "Uid:").split() == [str(uid)] * 4
            assert _field(status, "NoNewPrivs:") == "1"
            assert int(_field(status, "CapEff:"), 16) == 0
            assert int(_field(status, "CapBnd:"), 16) == 0
            assert _field(status, "Groups:") == ""
            limits = _proc(pid, "limits")
            assert _limit(limits, "Max address space") == str(1024 << 20)
            assert _limit(limits, "Max open files") == str(sandbox.MAX_OPEN_FILES)
            assert _limit(limits, "Max processes") == str(sandbox.MAX_PROCESSES)
            assert _limit(limits, "Max core file size") == "0"
        scan = await scans.get_scan(v1.GetScanRequest(id=started.id))
        assert scan.status == v1.ScanStatus.RUNNING
        await scans.cancel_scan(v1.CancelScanRequest(id=started.id))
        await wait_status(scans, started.id, {v1.ScanStatus.CANCELLED}, within=30)


def _with_children(pids: list[int]) -> list[int]:
    found = list(pids)
    for pid in pids:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
    return found


def _limit(limits: str, name: str) -> str:
    line = next(line for line in limits.splitlines() if line.startswith(name))
    return line[len(name) :].split()[0]


@pytest.mark.slow
async def test_a_job_past_its_memory_limit_fails_and_jetscan_lives_on(
    stack: Stack, standins: Path, open_port: int
) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    jobuser.ensure(USER)
    programs = {**stack.settings.programs, "nmap": str(standins / "hog")}
    confined = stack.launcher_with(job_user=USER, job_memory_mb=1024, programs=programs)
    async with confined, scan_service(stack) as scans:
        started = await scans.start_scan(nmap_request(open_port))
        failed = await wait_status(scans, started.id, {v1.ScanStatus.FAILED}, within=60)
        # The launcher's reason, then what the job's result says (issue 14).
        assert failed.error.startswith("the scanner failed (see the scan's console and result)")
    # Why, on its console: the scanner hit the job's address-space limit.
    url = f"ws://{stack.settings.http_addr}/ws/scans/{started.id}"
    frames, _ = await watch(url, stack.admin_token)
    assert any("MemoryError" in f.get("text", "") for f in frames if f["type"] == "line")
    async with scan_service(stack) as scans:
        again = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, again.id, {v1.ScanStatus.SUCCEEDED})


@pytest.mark.slow
async def test_a_syn_scan_runs_confined_with_exactly_net_raw(stack: Stack, open_port: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    jobuser.ensure(USER)
    confined = stack.launcher_with(job_user=USER, job_memory_mb=1024)
    async with confined, scan_service(stack) as scans:
        started = await scans.start_scan(nmap_request(open_port, scan_type="syn"))
        done = await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED})
        assert done.exit_code == 0
        findings = await all_findings(scans, started.id)
        assert any(f.port == open_port for f in findings)
