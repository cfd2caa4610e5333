"""Every mutation is recorded on `evt.audit.>`: who, what, when, from where; `jetscan audit`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from grpclib import GRPCError
from nats.aio.client import Client

from contracts import subjects, wire
from contracts.audit import AuditPage, AuditRecord, ListAudit
from contracts.auth import Role
from contracts.gen.jetscan import v1
from edge.audit import AuditLog, origin_of
from edge.auth import Principal, required_role
from tests.conftest import ROOT, Stack, run_jetscan, scan_service
from tests.handlers.test_lifecycle import slow_nmap
from workers import audit as workers_audit

pytestmark = pytest.mark.slow


def _env(stack: Stack) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_NATS_URL": stack.settings.nats_url,
    }


async def _audit(stack: Stack, *args: str) -> list[dict[str, Any]]:
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
    assert start["outcome"] == "OK"
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
        "OUTCOME",
        "FROM",
    ]
    assert any(" CancelScan " in line and started.id in line for line in out.splitlines())


async def test_a_bad_since_is_one_line_and_exit_1(stack: Stack) -> None:
    code, out, err = await run_jetscan(_env(stack), "audit", "--since", "yesterday")
    assert (code, out) == (1, "")
    assert err.startswith("jetscan: --since: expected") and err.count("\n") == 1


def _mutating_methods() -> set[str]:
    methods = set()
    for proto in (ROOT / "contracts" / "proto").rglob("*.proto"):
        methods |= set(re.findall(r"^\s*rpc (\w+)\(", proto.read_text(), re.MULTILINE))
    return {m for m in methods if not m.startswith(("Get", "List", "Watch", "Preview"))}


def test_every_mutating_rpc_is_audited() -> None:
    # The auditor records exactly the methods that need the operator role.
    mutating = _mutating_methods()
    assert len(mutating) >= 10
    assert {m for m in mutating if required_role(m) != Role.OPERATOR} == set()


async def test_each_mutating_rpc_lands_once_in_postgresql_with_its_outcome(stack: Stack) -> None:
    before = datetime.now(UTC)
    async with scan_service(stack) as scans:
        reports = v1.ReportServiceStub(scans.channel, metadata=scans.metadata, timeout=15)
        schedules = v1.ScheduleServiceStub(scans.channel, metadata=scans.metadata, timeout=15)
        started = await scans.start_scan(slow_nmap())
        await scans.cancel_scan(v1.CancelScanRequest(id=started.id))
        gone = "no-such-" + uuid.uuid4().hex[:8]
        # Refused calls are mutations attempted: recorded, with the status they got.
        attempts = [
            scans.triage_finding(v1.TriageFindingRequest(id=gone)),
            reports.generate_report(v1.GenerateReportRequest()),
            schedules.create_schedule(v1.CreateScheduleRequest()),
            schedules.update_schedule(v1.UpdateScheduleRequest()),
            schedules.delete_schedule(v1.DeleteScheduleRequest(id=gone)),
            schedules.run_schedule_now(v1.RunScheduleNowRequest(id=gone)),
            schedules.pause_schedule(v1.PauseScheduleRequest(id=gone)),
            schedules.resume_schedule(v1.ResumeScheduleRequest(id=gone)),
        ]
        for call in attempts:
            with pytest.raises(GRPCError):
                await call
    rows = await _rows(stack, _mutating_methods(), before)
    assert {r["action"] for r in rows} == _mutating_methods()
    by_action = {r["action"]: r for r in rows}
    assert by_action["StartScan"]["outcome"] == "OK"
    assert by_action["StartScan"]["target"] == "nmap 127.0.0.1"
    assert by_action["CancelScan"]["target"] == started.id
    assert by_action["DeleteSchedule"]["target"] == gone
    assert by_action["GenerateReport"]["outcome"] == "INVALID_ARGUMENT"
    assert by_action["PauseSchedule"]["outcome"] == "NOT_FOUND"
    assert all(r["who"] == "admin" and r["origin"].startswith("127.0.0.1:") for r in rows)


async def _rows(stack: Stack, actions: set[str], since: datetime) -> list[dict[str, Any]]:
    """This test's rows of the audit table: one per action, once every outcome is in."""
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        for _ in range(200):
            rows = await conn.fetch(
                "SELECT * FROM audit WHERE at >= $1 AND action = ANY($2) ORDER BY at",
                since,
                list(actions),
            )
            if len(rows) >= len(actions) and all(r["outcome"] for r in rows):
                return [dict(r) for r in rows]
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"audit rows missing: {[dict(r) for r in rows]}")


def _record(**changes: Any) -> AuditRecord:
    base = AuditRecord(
        id=uuid.uuid4().hex,
        at=datetime.now(UTC),
        source="cli",
        action="replay-test",
        who="replayer-" + uuid.uuid4().hex[:6],
        role="admin",
        origin="tester@host",
        target="t",
    )
    return msgspec.structs.replace(base, **changes)


async def test_a_redelivered_record_is_one_row_and_its_outcome_fills_it_in(
    stack: Stack, nc: Client
) -> None:
    js = nc.jetstream()
    pending = _record()
    # The same record three times (no message id, so JetStream keeps each, as a replay of
    # the stream or a redelivery would hand it to ingest), then its outcome, then the
    # pending one again: one row, with the outcome.
    for _ in range(3):
        await js.publish(subjects.audit("cli", pending.action), wire.encode(pending))
    done = msgspec.structs.replace(pending, outcome="OK")
    await js.publish(subjects.audit("cli", pending.action), wire.encode(done))
    await js.publish(subjects.audit("cli", pending.action), wire.encode(pending))
    marker = _record(who=pending.who)
    await js.publish(subjects.audit("cli", marker.action), wire.encode(marker))
    records = await _until(stack, pending.who, 2)
    assert [(r["id"], r["outcome"]) for r in records] == [(pending.id, "OK"), (marker.id, "")]


async def _until(stack: Stack, who: str, count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        found = await _audit(stack, "--who", who)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{who}: {found}")


async def test_the_table_is_read_page_by_page_oldest_first(stack: Stack, nc: Client) -> None:
    js = nc.jetstream()
    who = "pager-" + uuid.uuid4().hex[:6]
    start = datetime.now(UTC) - timedelta(minutes=1)
    made = [_record(who=who, at=start + timedelta(seconds=i)) for i in range(5)]
    for record in reversed(made):  # stream order differs from time order
        await js.publish(subjects.audit("cli", "paging"), wire.encode(record))
    await _until(stack, who, 5)
    pages, tokens, token = [], [], ""
    while True:
        ask = ListAudit(since=start, who=who, page_size=2, page_token=token)
        reply = await nc.request(subjects.query("audit", "list"), wire.encode(ask), timeout=10)
        page = msgspec.json.decode(reply.data, type=AuditPage)
        pages.append([r.id for r in page.records])
        if not (token := page.next_page_token):
            break
        tokens.append(token)
    assert pages == [[made[0].id, made[1].id], [made[2].id, made[3].id], [made[4].id]]
    # A token reused with another filter is refused, naming the field.
    ask = ListAudit(since=start, who="someone-else", page_size=2, page_token=tokens[0])
    reply = await nc.request(subjects.query("audit", "list"), wire.encode(ask), timeout=10)
    assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "400"
    assert "page_token" in reply.headers["Nats-Service-Error"]


async def test_without_a_queries_service_the_stream_is_read_one_record_per_mutation(
    nc: Client,
) -> None:
    js = nc.jetstream()
    who = "streamed-" + uuid.uuid4().hex[:6]
    since = datetime.now(UTC) - timedelta(seconds=1)
    pending = _record(who=who)
    await js.publish(subjects.audit("cli", pending.action), wire.encode(pending))
    done = msgspec.structs.replace(pending, outcome="OK")
    await js.publish(subjects.audit("cli", pending.action), wire.encode(done))
    other = _record()
    await js.publish(subjects.audit("cli", other.action), wire.encode(other))
    assert await workers_audit.read(js, since, who) == [done]


async def test_the_edge_helper_records_a_ui_mutation_with_the_browsers_address(
    stack: Stack, nc: Client
) -> None:
    # The helper a Starlette handler calls: the browser's address is the origin.
    log = AuditLog(nc.jetstream(), "ui")
    principal = Principal("portal-user-" + uuid.uuid4().hex[:6], Role.OPERATOR, "k" * 64)
    record = await log.begin(principal, "StartScan", "nmap 127.0.0.1", origin_of(("::1", 5123)))
    await log.finish(record, "OK")
    [row] = await _until(stack, principal.name, 1)
    assert (row["source"], row["origin"], row["outcome"]) == ("ui", "[::1]:5123", "OK")
    assert row["role"] == "operator" and len(row["token"]) == 12
