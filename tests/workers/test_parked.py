"""`jetscan parked list|replay` against the real stack: a result that can never be applied is
parked with its reason, listed, and applied once replayed after the cause is fixed."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime

import nats
import pytest

from contracts import subjects, wire
from contracts.findings import Finding, Severity
from contracts.gen.jetscan import v1
from contracts.nmap import NmapRun
from contracts.results import ScanResult
from contracts.scans import CancelScan, StartScan
from tests.conftest import Stack, all_findings, run_jetscan, scan_service, wait_status

pytestmark = pytest.mark.slow


def env_for(stack: Stack) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_NATS_URL": stack.settings.nats_url,
    }


async def parked_entries(stack: Stack) -> list[dict[str, object]]:
    code, out, err = await run_jetscan(
        env_for(stack), "parked", "list", "--json", "--limit", "10000"
    )
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


async def wait_parked(stack: Stack, subject: str, stream_seq: int) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        for entry in await parked_entries(stack):
            if entry["stream_seq"] == stream_seq and entry["subject"] == subject:
                return entry
        assert loop.time() < deadline, f"{subject} #{stream_seq} was not parked within 30 s"
        await asyncio.sleep(0.3)


async def test_a_parked_result_is_listed_with_its_reason_and_applied_once_replayed(
    stack: Stack,
) -> None:
    scan_id = uuid.uuid4().hex
    finding = Finding(
        tool="nmap",
        severity=Severity.INFO,
        title="Open port 1/tcp",
        fingerprint=uuid.uuid4().hex,
        host="127.0.0.1",
        port=1,
        protocol="tcp",
    )
    result = ScanResult(
        scan_id=scan_id,
        tool="nmap",
        target="127.0.0.1",
        finished_at=datetime.now(UTC),
        exit_code=0,
        partial=False,
        findings=(finding,),
        data=NmapRun(),
    )
    nc = await nats.connect(stack.settings.nats_url)
    await stack.stop_role("launcher")
    try:
        js = nc.jetstream()
        # A result of a scan nobody started: ingest can never apply it, so it parks it.
        ack = await js.publish(subjects.scan_results("nmap"), wire.encode(result))
        entry = await wait_parked(stack, subjects.scan_results("nmap"), ack.seq)
        assert entry["kind"] == "terminated", entry
        assert entry["stream"] == "RESULTS", entry
        assert entry["consumer"] == "ingest-results", entry
        assert f"scan {scan_id} was never started" in str(entry["reason"]), entry

        code, out, _ = await run_jetscan(env_for(stack), "parked", "list", "--limit=9999")
        assert code == 0
        header, *rows = out.splitlines()
        assert all(rows), out
        assert header.split()[:3] == ["SEQ", "PARKED", "KIND"]
        assert any(r.split()[0] == str(entry["seq"]) and "never started" in r for r in rows), out

        # The fix: the scan's start command arrives (the launcher is down, so it stays queued).
        start = StartScan(
            scan_id=scan_id,
            target="127.0.0.1",
            domain="127.0.0.1/32",
            tool="nmap",
            config={"ports": "1"},
            deadline_seconds=60,
            requested_by="test",
            requested_at=datetime.now(UTC),
        )
        await js.publish(
            subjects.scan_start(scan_id),
            wire.encode(start),
            headers={"Nats-Msg-Id": subjects.msg_id("scan", scan_id, "start")},
        )
        async with scan_service(stack) as scans:
            await wait_status(scans, scan_id, {v1.ScanStatus.QUEUED}, within=30)

            code, out, err = await run_jetscan(
                env_for(stack), "parked", "replay", str(entry["seq"])
            )
            assert code == 0, err
            assert f"replayed {entry['seq']}: scan.results.nmap" in out
            # The replay is a mutation: recorded, by the CLI, naming the parked sequence.
            code, out, err = await run_jetscan(
                env_for(stack), "audit", "--since", "5m", "--who", "cli-admin", "--json"
            )
            assert code == 0, err
            assert any(
                '"action":"parked-replay"' in line
                and f'"target":"{entry["seq"]} scan.results.' in line
                for line in out.splitlines()
            ), out

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not (found := await all_findings(scans, scan_id)):
                assert loop.time() < deadline, "the replayed result was not applied in 30 s"
                await asyncio.sleep(0.2)
            assert [f.fingerprint for f in found] == [finding.fingerprint]

        # Replayed entries leave PARKED; a second replay of the same one is refused.
        assert all(e["seq"] != entry["seq"] for e in await parked_entries(stack))
        code, _, err = await run_jetscan(env_for(stack), "parked", "replay", str(entry["seq"]))
        assert code == 1
        assert err == f"jetscan: no parked message {entry['seq']} in PARKED\n"
        cancel = CancelScan(scan_id=scan_id, requested_by="test", requested_at=datetime.now(UTC))
        await js.publish(subjects.scan_cancel(scan_id), wire.encode(cancel))
    finally:
        await stack.start_role("launcher")
        await nc.drain()


async def test_replaying_a_message_gone_from_its_stream_says_so(stack: Stack) -> None:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        js = nc.jetstream()
        ack = await js.publish(subjects.scan_results("nmap"), b"not json at all")
        entry = await wait_parked(stack, subjects.scan_results("nmap"), ack.seq)
        assert str(entry["reason"]).startswith("undecodable: "), entry
        await js.delete_msg("RESULTS", ack.seq)
        code, _, err = await run_jetscan(env_for(stack), "parked", "replay", str(entry["seq"]))
        assert code == 1
        assert "is gone from RESULTS" in err, err
        assert any(e["seq"] == entry["seq"] for e in await parked_entries(stack))
    finally:
        await nc.drain()


async def test_a_list_cut_by_its_limit_says_so(stack: Stack) -> None:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        js = nc.jetstream()
        for _ in range(2):
            ack = await js.publish(subjects.scan_results("nmap"), b"{")
            await wait_parked(stack, subjects.scan_results("nmap"), ack.seq)
        code, out, err = await run_jetscan(env_for(stack), "parked", "list", "--limit", "1")
        assert code == 0
        assert len(out.splitlines()) == 2  # the header and one entry
        total = int((await js.stream_info("PARKED")).state.messages)
        assert err == f"jetscan: 1 of {total} shown; --limit for more\n"
    finally:
        await nc.drain()
