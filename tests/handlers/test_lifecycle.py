"""StartScan → job → results in PostgreSQL, through the local executor and real nmap."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
import pytest
from grpclib import GRPCError
from grpclib.const import Status
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from contracts import subjects, wire
from contracts.findings import Finding, Severity
from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.nmap import NmapRun
from contracts.results import ScanResult
from contracts.scans import ScanEvent, ScanStatus
from tests.conftest import TERMINAL, Stack, scan_service, wait_status

pytestmark = pytest.mark.slow


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


def nmap_request(port: int | str, **extra: object) -> v1.StartScanRequest:
    config: dict[str, object] = {"ports": str(port), "reverse_dns": False}
    deadline = int(extra.pop("deadline_seconds", 0))  # type: ignore[call-overload]
    config.update(extra)
    return v1.StartScanRequest(
        target="127.0.0.1",
        tool="nmap",
        config=Struct.from_dict(config),
        deadline_seconds=deadline,
    )


def job_pids(scan_id: str) -> list[int]:
    """Live processes whose environment names this scan (the job)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if f"JETSCAN_SCAN_ID={scan_id}".encode() in environ.split(b"\0") and state != "Z":
            pids.append(int(entry.name))
    return pids


def slow_nmap() -> v1.StartScanRequest:
    # -T0 waits minutes between probes: a scan that reliably outlives the test's patience.
    return nmap_request("1-3", timing=0)


async def test_a_scan_runs_to_success_with_a_finding_for_the_open_port(
    scans: v1.ScanServiceStub, open_port: int
) -> None:
    started = await scans.start_scan(nmap_request(open_port))
    assert started.status == v1.ScanStatus.QUEUED
    assert started.target == "127.0.0.1"
    # Right after StartScan the scan is readable, never NOT_FOUND.
    assert (await scans.get_scan(v1.GetScanRequest(id=started.id))).id == started.id
    done = await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED})
    assert done.exit_code == 0
    assert done.started_at is not None and done.finished_at is not None
    assert done.finding_counts.info >= 1
    page = await scans.list_findings(v1.ListFindingsRequest(scan_id=started.id))
    ports = [(f.host, f.port, f.protocol) for f in page.findings]
    assert ("127.0.0.1", open_port, "tcp") in ports
    listed = await scans.list_scans(v1.ListScansRequest(tool="nmap", page_size=1000))
    assert started.id in [s.id for s in listed.scans]


async def test_the_same_request_id_yields_one_scan(
    scans: v1.ScanServiceStub, stack: Stack, open_port: int
) -> None:
    req = nmap_request(open_port)
    req.request_id = f"retry-{uuid.uuid4()}"
    first, second = await asyncio.gather(scans.start_scan(req), scans.start_scan(req))
    assert first.id == second.id
    third = await scans.start_scan(req)
    assert third.id == first.id
    await wait_status(scans, first.id, TERMINAL)
    fourth = await scans.start_scan(req)  # long after: the recorded scan, not a new one
    assert fourth.id == first.id and fourth.status == v1.ScanStatus.SUCCEEDED
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM scans WHERE request_id = $1", req.request_id)
            == 1
        )
    finally:
        await conn.close()


async def test_cancel_stops_the_job(scans: v1.ScanServiceStub) -> None:
    started = await scans.start_scan(slow_nmap())
    await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
    assert job_pids(started.id)
    await scans.cancel_scan(v1.CancelScanRequest(id=started.id))
    done = await wait_status(scans, started.id, {v1.ScanStatus.CANCELLED}, within=30)
    assert done.status == v1.ScanStatus.CANCELLED
    assert job_pids(started.id) == []
    with pytest.raises(GRPCError) as err:
        await scans.cancel_scan(v1.CancelScanRequest(id=started.id))
    assert err.value.status == Status.FAILED_PRECONDITION
    with pytest.raises(GRPCError) as err:
        await scans.cancel_scan(v1.CancelScanRequest(id="no-such-scan"))
    assert err.value.status == Status.NOT_FOUND


async def test_a_scan_past_its_deadline_times_out(scans: v1.ScanServiceStub) -> None:
    req = slow_nmap()
    req.deadline_seconds = 3
    started = await scans.start_scan(req)
    assert started.deadline_seconds == 3
    done = await wait_status(scans, started.id, {v1.ScanStatus.TIMED_OUT}, within=40)
    assert "deadline" in done.error
    assert done.attempts == 1  # a deadline is the scan's own end: never run again
    assert job_pids(started.id) == []


async def second_attempt_running(scans: v1.ScanServiceStub, scan_id: str) -> list[int]:
    """Wait for the scan's attempt 2 to run; its job's pids."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        again = await scans.get_scan(v1.GetScanRequest(id=scan_id))
        second = job_pids(scan_id)
        if again.attempts == 2 and again.status == v1.ScanStatus.RUNNING and second:
            return second
        assert again.status not in TERMINAL, f"ended {again.status}: {again.error}"
        assert loop.time() < deadline, f"no second attempt: {again.status} {again.attempts}"
        await asyncio.sleep(0.1)


async def test_a_killed_worker_runs_again_then_fails_as_lost(
    scans: v1.ScanServiceStub, stack: Stack
) -> None:
    assert stack.settings.max_attempts == 2
    started = await scans.start_scan(slow_nmap())
    running = await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
    assert running.attempts == 1
    first = job_pids(started.id)
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    # jetscan lost the job, not the scanner failing: the scan runs again, once.
    second = await second_attempt_running(scans, started.id)
    assert not set(second) & set(first)
    for pid in second:
        os.kill(pid, signal.SIGKILL)
    bound = stack.settings.heartbeat_timeout * 2 + 20
    done = await wait_status(scans, started.id, {v1.ScanStatus.FAILED}, within=bound)
    assert done.error.startswith("lost") and done.error.endswith("(attempt 2 of 2)")
    assert done.attempts == 2


async def test_a_silent_scan_is_failed_as_lost_by_liveness(
    scans: v1.ScanServiceStub, stack: Stack
) -> None:
    # A running scan with no job and no heartbeat: what a crashed node leaves behind.
    scan_id = uuid.uuid4().hex
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at,"
            " started_at, updated_at) VALUES ($1, '127.0.0.1', '127.0.0.1', 'nmap', 'running',"
            " 600, $2, $2, $2)",
            scan_id,
            datetime.now(UTC) - timedelta(seconds=5),
        )
    finally:
        await conn.close()
    bound = stack.settings.heartbeat_timeout * 2 + 20
    done = await wait_status(scans, scan_id, {v1.ScanStatus.FAILED}, within=bound)
    assert done.error.startswith("lost")


async def test_a_redelivered_result_adds_no_findings(
    scans: v1.ScanServiceStub, stack: Stack, open_port: int
) -> None:
    started = await scans.start_scan(nmap_request(open_port))
    done = await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED})
    assert done.finding_counts.info >= 1
    nc = await nats.connect(stack.settings.nats_url)
    try:
        js = nc.jetstream()
        subject = subjects.scan_result("nmap", started.id)
        sub = await js.pull_subscribe(subject, stream="RESULTS")
        original = None
        for msg in await sub.fetch(1000, timeout=2):
            if started.id.encode() in msg.data:
                original = msg.data
        assert original is not None
        await sub.unsubscribe()
        before = await _scan_findings(stack, started.id)
        replays = []
        for i in range(2):  # replayed by an operator: a new message id each time
            ack = await js.publish(
                subject,
                original,
                headers={"Nats-Msg-Id": f"replay-{uuid.uuid4()}-{i}"},
            )
            replays.append(ack.seq)
        # Not a fixed sleep: ingest has settled both replays once its ack floor passes them.
        await _until_ingested(js, "RESULTS", "ingest-results", max(replays))
        assert await _scan_findings(stack, started.id) == before
        again = await scans.get_scan(v1.GetScanRequest(id=started.id))
        assert again.finding_counts == done.finding_counts
    finally:
        await nc.drain()


async def _until_ingested(js: JetStreamContext, stream: str, durable: str, seq: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while (info := await js.consumer_info(stream, durable)).ack_floor.stream_seq < seq:
        assert loop.time() < deadline, f"{durable} still at {info.ack_floor} after 60 s"
        await asyncio.sleep(0.1)


async def _scan_findings(stack: Stack, scan_id: str) -> tuple[int, list[tuple[str, str]]]:
    """The scan's links to findings, and those findings' (id, last_scan_id): rows of this
    scan only, so other tests' scans running meanwhile cannot change them."""
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        linked = await conn.fetchval(
            "SELECT count(*) FROM scan_findings JOIN scans ON key = scan_key WHERE id = $1",
            scan_id,
        )
        rows = await conn.fetch(
            "SELECT f.id, f.last_scan_id FROM findings f JOIN scan_findings l"
            " ON l.finding_key = f.key JOIN scans s ON s.key = l.scan_key WHERE s.id = $1"
            " ORDER BY f.id",
            scan_id,
        )
        return int(linked), [(r["id"], r["last_scan_id"]) for r in rows]
    finally:
        await conn.close()


def nmap_result(
    scan_id: str, findings: tuple[Finding, ...] = (), data: NmapRun | None = None
) -> ScanResult:
    """A whole, successful nmap result for `scan_id`, as a job publishes it."""
    return ScanResult(
        scan_id=scan_id,
        tool="nmap",
        target="127.0.0.1",
        finished_at=datetime.now(UTC),
        exit_code=0,
        partial=False,
        findings=findings,
        data=data or NmapRun(),
    )


async def test_a_result_in_parts_is_ingested_whole(stack: Stack) -> None:
    import msgspec

    scan_id = uuid.uuid4().hex
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at)"
            " VALUES ($1, '127.0.0.1', '127.0.0.1', 'nmap', 'running', 600, now())",
            scan_id,
        )
    finally:
        await conn.close()
    findings = tuple(
        Finding(
            tool="nmap",
            severity=Severity.LOW,
            title=f"t{i}",
            fingerprint=f"{scan_id}-{i}",
            description="d" * 300,
        )
        for i in range(400)
    )
    result = nmap_result(scan_id, findings, NmapRun(version="7.93"))
    # In four parts of 100 findings, the last with the data, as a job sends a large result.
    parts = [
        msgspec.structs.replace(
            result,
            findings=findings[i : i + 100],
            data=result.data if i == 300 else NmapRun(),
            part=i // 100 + 1,
            parts=4,
        )
        for i in range(0, 400, 100)
    ]
    nc = await nats.connect(stack.settings.nats_url)
    try:
        js = nc.jetstream()
        for p in parts:
            msg_id = subjects.msg_id("result", scan_id, f"{p.part}-of-{p.parts}")
            await js.publish(
                subjects.scan_results("nmap"), wire.encode(p), headers={"Nats-Msg-Id": msg_id}
            )
    finally:
        await nc.drain()
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            row = await conn.fetchrow(
                "SELECT result_at, result_part, exit_code, partial FROM scans WHERE id = $1",
                scan_id,
            )
            if row["result_at"] is not None:
                break
            assert loop.time() < deadline, "the result was not ingested within 60 s"
            await asyncio.sleep(0.1)
        assert (row["result_part"], row["exit_code"], row["partial"]) == (4, 0, False)
        # What PostgreSQL holds of the result, read back: every finding of every part, whole.
        bodies = await conn.fetch(
            "SELECT f.body::text AS body FROM findings f JOIN scan_findings l"
            " ON l.finding_key = f.key JOIN scans s ON s.key = l.scan_key WHERE s.id = $1",
            scan_id,
        )
    finally:
        await conn.close()
    stored = sorted(
        (msgspec.json.decode(r["body"], type=Finding) for r in bodies), key=lambda f: f.title
    )
    assert stored == sorted(findings, key=lambda f: f.title)


async def test_a_scan_cancelled_while_queued_ends_cancelled_with_no_job_left(
    scans: v1.ScanServiceStub, stack: Stack
) -> None:
    # With the launcher down, start and cancel wait in COMMANDS; it then sees both, in order.
    await stack.stop_role("launcher")
    try:
        started = await scans.start_scan(slow_nmap())
        cancelled = await scans.cancel_scan(v1.CancelScanRequest(id=started.id))
        assert cancelled.status == v1.ScanStatus.QUEUED
    finally:
        await stack.start_role("launcher")
    await wait_status(scans, started.id, {v1.ScanStatus.CANCELLED}, within=30)
    for _ in range(50):
        if not job_pids(started.id):
            break
        await asyncio.sleep(0.2)
    assert job_pids(started.id) == []


async def test_results_and_events_of_scans_never_started_are_parked_at_once(
    stack: Stack,
) -> None:
    # More such results than ingest-results lets wait for an ack (64): retried, they held
    # every slot for ~15 s; parked on their first delivery, they hold none.
    nc = await nats.connect(stack.settings.nats_url)
    try:
        js = nc.jetstream()
        parked = await js.subscribe(
            "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>",
            stream="PARKED",
            deliver_policy=DeliverPolicy.NEW,
        )
        seqs: dict[str, set[int]] = {"RESULTS": set(), "EVENTS": set()}
        for _ in range(70):
            ack = await js.publish(
                subjects.scan_results("nmap"), wire.encode(nmap_result(uuid.uuid4().hex))
            )
            seqs["RESULTS"].add(ack.seq)
        event = ScanEvent(scan_id=uuid.uuid4().hex, status=ScanStatus.RUNNING, at=datetime.now(UTC))
        ack = await js.publish(subjects.scan_event(event.scan_id, "running"), wire.encode(event))
        seqs["EVENTS"].add(ack.seq)
        waiting = sum(map(len, seqs.values()))
        while waiting:
            advisory = json.loads((await parked.next_msg(timeout=30)).data)
            stream, seq = advisory["stream"], advisory["stream_seq"]
            if seq in seqs.get(stream, ()):
                assert advisory["deliveries"] == 1, advisory
                seqs[stream].remove(seq)
                waiting -= 1
        await parked.unsubscribe()
    finally:
        await nc.drain()
