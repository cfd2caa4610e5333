"""Every mutation is recorded on `evt.audit.>`: who, what, when, from where; `jetscan audit`."""

from __future__ import annotations

import json
import os
import socket

import pytest

from contracts.gen.jetscan import v1
from tests.conftest import Stack, run_jetscan, scan_service
from tests.handlers.test_lifecycle import slow_nmap

pytestmark = pytest.mark.slow


def _env(stack: Stack) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_NATS_URL": stack.settings.nats_url,
    }


async def _audit(stack: Stack, *args: str) -> list[dict[str, str]]:
    code, out, err = await run_jetscan(_env(stack), "audit", "--since", "10m", "--json", *args)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


async def test_rpc_and_cli_mutations_are_recorded_and_reads_are_not(stack: Stack) -> None:
    async with scan_service(stack) as scans:
        started = await scans.start_scan(slow_nmap())
        await scans.cancel_scan(v1.CancelScanRequest(id=started.id))
        await scans.list_scans(v1.ListScansRequest())
    code, _, err = await run_jetscan(
        _env(stack), "token", "create", "--role", "viewer", "--name", "audited"
    )
    assert code == 0, err

    records = await _audit(stack)
    start = [r for r in records if r["action"] == "StartScan"][-1]  # the one just made
    assert (start["source"], start["who"], start["role"]) == ("grpc", "admin", "admin")
    assert start["target"] == "nmap 127.0.0.1"
    assert start["origin"].startswith("127.0.0.1:")
    assert len(start["token"]) == 12
    cancel = next(r for r in records if r["action"] == "CancelScan" and r["target"] == started.id)
    assert cancel["who"] == "admin"
    assert not any(r["action"] == "ListScans" for r in records)
    created = [r for r in records if r["action"] == "token-create"][-1]
    assert (created["source"], created["target"]) == ("cli", "audited (viewer)")
    assert created["origin"].endswith("@" + socket.gethostname())
    assert records == sorted(records, key=lambda r: r["at"])

    # --who keeps one principal's records; the table has a header and a row per record.
    assert {r["who"] for r in await _audit(stack, "--who", "cli-admin")} == {"cli-admin"}
    code, out, _ = await run_jetscan(_env(stack), "audit", "--since", "10m", "--who", "admin")
    assert code == 0
    assert out.splitlines()[0].split() == [
        "WHEN",
        "WHO",
        "ROLE",
        "SOURCE",
        "ACTION",
        "TARGET",
        "FROM",
    ]
    assert any(" CancelScan " in line and started.id in line for line in out.splitlines())


async def test_a_bad_since_is_one_line_and_exit_1(stack: Stack) -> None:
    code, out, err = await run_jetscan(_env(stack), "audit", "--since", "yesterday")
    assert (code, out) == (1, "")
    assert err.startswith("jetscan: --since: expected") and err.count("\n") == 1
