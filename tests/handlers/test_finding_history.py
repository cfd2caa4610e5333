"""Findings over time, end to end: real nmap against ports this test opens and closes, through
the whole stack (edge → COMMANDS → launcher → job → RESULTS → ingest → PostgreSQL → queries)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import nats
import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from nats.js.api import DeliverPolicy

from contracts import subjects
from contracts.auth import Role
from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from tests.conftest import Stack, run_jetscan, scan_service, wait_status
from workers import tokens

pytestmark = pytest.mark.slow

OPEN = v1.FindingState.OPEN
FIXED = v1.FindingState.FIXED


class Ports:
    """Loopback ports this test opens and closes at will."""

    def __init__(self) -> None:
        self.servers: dict[int, asyncio.Server] = {}

    async def reserve(self) -> int:
        server = await asyncio.start_server(self._hang_up, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        server.close()
        await server.wait_closed()
        return port

    async def open(self, port: int) -> None:
        self.servers[port] = await asyncio.start_server(
            self._hang_up, "127.0.0.1", port, reuse_address=True
        )

    async def close(self, port: int) -> None:
        server = self.servers.pop(port)
        server.close()
        await server.wait_closed()

    async def opened(self, n: int) -> list[int]:
        """`n` ports, open."""
        ports = [await self.reserve() for _ in range(n)]
        for port in ports:
            await self.open(port)
        return ports

    @staticmethod
    async def _hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()


@pytest.fixture
async def ports() -> AsyncIterator[Ports]:
    p = Ports()
    try:
        yield p
    finally:
        for port in list(p.servers):
            await p.close(port)


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


def nmap(ports: list[int], **extra: object) -> v1.StartScanRequest:
    config: dict[str, object] = {"ports": ",".join(map(str, ports)), "reverse_dns": False}
    deadline = int(extra.pop("deadline_seconds", 0))  # type: ignore[call-overload]
    config.update(extra)
    return v1.StartScanRequest(
        target="127.0.0.1", tool="nmap", config=Struct.from_dict(config), deadline_seconds=deadline
    )


async def scan(scans: v1.ScanServiceStub, ports: list[int]) -> v1.Scan:
    started = await scans.start_scan(nmap(ports))
    return await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED}, within=90)


def counts(s: v1.Scan) -> tuple[int, int, int, int]:
    c = s.change_counts
    return (c.new, c.unchanged, c.reopened, c.fixed)


async def by_port(scans: v1.ScanServiceStub, **filters: object) -> dict[int, v1.Finding]:
    page = await scans.list_findings(v1.ListFindingsRequest(page_size=1000, **filters))  # type: ignore[arg-type]
    return {f.port: f for f in page.findings}


async def changes(scans: v1.ScanServiceStub, scan_id: str) -> dict[int, v1.Change]:
    return {p: f.change for p, f in (await by_port(scans, changed_in_scan=scan_id)).items()}


async def test_open_fixed_new_reopened_and_a_subset_scan(
    scans: v1.ScanServiceStub, ports: Ports
) -> None:
    a, b, c = [await ports.reserve() for _ in range(3)]
    everything = [a, b, c]
    await ports.open(a)
    await ports.open(b)

    first = await scan(scans, everything)
    assert counts(first) == (2, 0, 0, 0)
    assert await changes(scans, first.id) == {a: v1.Change.NEW, b: v1.Change.NEW}

    await ports.close(a)
    second = await scan(scans, everything)
    assert counts(second) == (0, 1, 0, 1)
    assert await changes(scans, second.id) == {a: v1.Change.FIXED, b: v1.Change.UNCHANGED}
    fixed = await by_port(scans, changed_in_scan=second.id, change=v1.Change.FIXED)
    assert list(fixed) == [a]
    assert fixed[a].state == FIXED and fixed[a].fixed_at is not None

    await ports.open(c)
    third = await scan(scans, everything)
    assert counts(third) == (1, 1, 0, 0)
    assert (await changes(scans, third.id))[c] == v1.Change.NEW

    await ports.open(a)
    fourth = await scan(scans, everything)
    assert counts(fourth) == (0, 2, 1, 0)
    reopened = (await by_port(scans, changed_in_scan=fourth.id))[a]
    assert (reopened.change, reopened.state, reopened.reopened) == (v1.Change.REOPENED, OPEN, 1)

    # Close b and c, scan only a: nothing outside port a is fixed.
    await ports.close(b)
    await ports.close(c)
    subset = await scan(scans, [a])
    assert counts(subset) == (0, 1, 0, 0)
    target = await by_port(scans, target="127.0.0.1", tool="nmap", state=OPEN)
    assert {a, b, c} <= set(target)
    domain = await by_port(scans, domain=subset.domain, state=OPEN)
    assert {a, b, c} <= set(domain)
    assert not {a, b, c} & set(await by_port(scans, domain="elsewhere.test"))

    # The finding's story: every scan that decided something about it, in order.
    story = await scans.get_finding(v1.GetFindingRequest(id=reopened.id))
    assert [(o.scan_id, o.change) for o in story.occurrences] == [
        (first.id, v1.Change.NEW),
        (second.id, v1.Change.FIXED),
        (fourth.id, v1.Change.REOPENED),
        (subset.id, v1.Change.UNCHANGED),
    ]
    assert story.target == "127.0.0.1" and story.state == OPEN


async def test_cancelled_and_timed_out_scans_fix_nothing(
    scans: v1.ScanServiceStub, ports: Ports
) -> None:
    a, b = await ports.opened(2)
    first = await scan(scans, [a, b])
    assert counts(first) == (2, 0, 0, 0)
    await ports.close(a)
    await ports.close(b)

    # -T0 waits minutes between probes: cancelled while running.
    slow = await scans.start_scan(nmap([a, b], timing=0))
    await wait_status(scans, slow.id, {v1.ScanStatus.RUNNING})
    await scans.cancel_scan(v1.CancelScanRequest(id=slow.id))
    cancelled = await wait_status(scans, slow.id, {v1.ScanStatus.CANCELLED}, within=30)
    assert counts(cancelled) == (0, 0, 0, 0)

    # Stopped at its deadline: a partial result.
    late = await scans.start_scan(nmap([a, b], timing=0, deadline_seconds=3))
    timed_out = await wait_status(scans, late.id, {v1.ScanStatus.TIMED_OUT}, within=60)
    assert counts(timed_out) == (0, 0, 0, 0)

    still = await by_port(scans, changed_in_scan=first.id)
    assert {still[a].state, still[b].state} == {OPEN}


async def test_a_false_positive_sticks_across_rescans_and_a_replayed_result(
    scans: v1.ScanServiceStub, ports: Ports, stack: Stack
) -> None:
    a, b = await ports.opened(2)
    first = await scan(scans, [a, b])
    found = await by_port(scans, scan_id=first.id)
    fp = await scans.triage_finding(
        v1.TriageFindingRequest(id=found[b].id, triage=v1.Triage.FALSE_POSITIVE)
    )
    assert fp.triage == v1.Triage.FALSE_POSITIVE and fp.triaged_by == "admin"
    assert [h.triage for h in fp.history] == [v1.Triage.FALSE_POSITIVE]

    # Left out of counts and lists by default, shown on request.
    again = await scan(scans, [a, b])
    assert counts(again) == (0, 1, 0, 0)
    assert again.finding_counts.info == 1
    assert set(await by_port(scans, scan_id=again.id)) == {a}
    shown = await by_port(scans, scan_id=again.id, include_false_positives=True)
    assert shown[b].triage == v1.Triage.FALSE_POSITIVE
    assert set(await by_port(scans, triage=v1.Triage.FALSE_POSITIVE, target="127.0.0.1")) >= {b}

    # Replay the first scan's result: no new rows, triage kept.
    conn = await asyncpg.connect(stack.settings.database_url)
    nc = await nats.connect(stack.settings.nats_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM findings")
        js = nc.jetstream()
        sub = await js.subscribe(
            subjects.scan_result("nmap", first.id),
            deliver_policy=DeliverPolicy.ALL,
            ordered_consumer=True,
        )
        replayed = False
        async for msg in sub.messages:
            if first.id.encode() in msg.data:
                await js.publish(
                    msg.subject, msg.data, headers={"Nats-Msg-Id": f"replay-{uuid.uuid4()}"}
                )
                replayed = True
                break
        await sub.unsubscribe()
        assert replayed
        third = await scan(scans, [a, b])  # after the replay in stream order
        assert counts(third) == (0, 1, 0, 0)
        assert await conn.fetchval("SELECT count(*) FROM findings") == before
        kept = await scans.get_finding(v1.GetFindingRequest(id=found[b].id))
        assert kept.triage == v1.Triage.FALSE_POSITIVE and kept.state == OPEN
        assert len(kept.history) == 1
    finally:
        await nc.drain()
        await conn.close()


async def test_an_accepted_risk_expires_back_to_open(
    scans: v1.ScanServiceStub, ports: Ports
) -> None:
    [a] = await ports.opened(1)
    first = await scan(scans, [a])
    [finding] = (await by_port(scans, scan_id=first.id)).values()

    with pytest.raises(GRPCError) as err:
        await scans.triage_finding(
            v1.TriageFindingRequest(id=finding.id, triage=v1.Triage.ACCEPTED_RISK)
        )
    assert err.value.status == Status.INVALID_ARGUMENT and "reason" in str(err.value.message)

    until = datetime.now(UTC) + timedelta(seconds=3)
    accepted = await scans.triage_finding(
        v1.TriageFindingRequest(
            id=finding.id,
            triage=v1.Triage.ACCEPTED_RISK,
            reason="internal only",
            until=until,
            severity_override=v1.Severity.LOW,
        )
    )
    assert accepted.triage == v1.Triage.ACCEPTED_RISK
    assert accepted.triage_reason == "internal only"
    assert (accepted.severity, accepted.reported_severity) == (v1.Severity.LOW, v1.Severity.INFO)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        now = await scans.get_finding(v1.GetFindingRequest(id=finding.id))
        if now.triage == v1.Triage.NONE and len(now.history) == 2:
            break
        assert loop.time() < deadline, f"still {now.triage} with {len(now.history)} entries"
        await asyncio.sleep(0.2)
    assert now.state == OPEN and now.severity == v1.Severity.INFO
    assert now.history[-1].by.startswith("jetscan")


async def test_triage_needs_an_operator_and_a_known_finding(
    scans: v1.ScanServiceStub, stack: Stack
) -> None:
    with pytest.raises(GRPCError) as err:
        await scans.triage_finding(
            v1.TriageFindingRequest(id="0" * 32, triage=v1.Triage.FALSE_POSITIVE)
        )
    assert err.value.status == Status.NOT_FOUND
    nc = await nats.connect(stack.settings.nats_url)
    try:
        viewer = await tokens.create(nc.jetstream(), Role.VIEWER, f"viewer-{uuid.uuid4().hex[:6]}")
    finally:
        await nc.drain()
    addr = stack.settings.grpc_addr
    channel = Channel(addr.host, addr.port)
    try:
        as_viewer = v1.ScanServiceStub(
            channel, metadata={"authorization": f"Bearer {viewer}"}, timeout=15
        )
        # The token reaches the edge through a KV watch: until then it is unknown.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        status = Status.UNAUTHENTICATED
        while status == Status.UNAUTHENTICATED and loop.time() < deadline:
            try:
                await as_viewer.triage_finding(
                    v1.TriageFindingRequest(id="0" * 32, triage=v1.Triage.FALSE_POSITIVE)
                )
                status = Status.OK
            except GRPCError as exc:
                status = exc.status
                await asyncio.sleep(0.1)
        assert status == Status.PERMISSION_DENIED
    finally:
        channel.close()


async def test_list_findings_refuses_bad_filters(scans: v1.ScanServiceStub) -> None:
    with pytest.raises(GRPCError) as err:
        await scans.list_findings(v1.ListFindingsRequest(change=v1.Change.NEW))
    assert err.value.status == Status.INVALID_ARGUMENT and "changed_in_scan" in str(
        err.value.message
    )
    with pytest.raises(GRPCError) as err:
        await scans.list_findings(v1.ListFindingsRequest(changed_in_scan="no.such"))
    assert err.value.status == Status.INVALID_ARGUMENT


async def test_sslyze_against_a_closed_port_fails_saying_it_reached_nothing(
    scans: v1.ScanServiceStub, ports: Ports
) -> None:
    closed = await ports.reserve()
    started = await scans.start_scan(
        v1.StartScanRequest(
            target=f"127.0.0.1:{closed}", tool="sslyze", config=Struct.from_dict({})
        )
    )
    done = await wait_status(scans, started.id, {v1.ScanStatus.FAILED}, within=120)
    # exit_code is sslyze's own (it exits 0 either way); the job's verdict is the status.
    assert done.error.startswith("the scan reached nothing: sslyze reached nothing")
    assert "rejected" in done.error.lower() or "refused" in done.error.lower(), done.error
    assert counts(done) == (0, 0, 0, 0)


async def test_the_findings_cli(scans: v1.ScanServiceStub, ports: Ports, stack: Stack) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_GRPC_ADDR": str(stack.settings.grpc_addr),
    }
    [a] = await ports.opened(1)
    first = await scan(scans, [a])
    code, out, err = await run_jetscan(env, "findings", "list", "--changed-in", first.id, "--json")
    assert code == 0, err
    [listed] = [json.loads(line) for line in out.splitlines()]
    assert (listed["port"], listed["change"], listed["state"]) == (
        a,
        "CHANGE_NEW",
        "FINDING_STATE_OPEN",
    )
    fid = listed["id"]

    code, _, err = await run_jetscan(env, "findings", "triage", fid, "--accept-risk")
    assert code == 1 and "reason: required" in err
    code, out, err = await run_jetscan(
        env,
        "findings",
        "triage",
        fid,
        "--accept-risk",
        "--reason",
        "lab box",
        "--until",
        "2099-01-01",
    )
    assert code == 0, err
    assert "accepted-risk" in out and "lab box" in out
    code, out, err = await run_jetscan(env, "findings", "triage", fid, "--reopen", "--json")
    assert code == 0, err
    assert json.loads(out)["triage"] == "TRIAGE_NONE"

    await ports.close(a)
    second = await scan(scans, [a])
    code, out, err = await run_jetscan(
        env,
        "findings",
        "list",
        "--target",
        "127.0.0.1",
        "--state",
        "fixed",
        "--changed-in",
        second.id,
    )
    assert code == 0, err
    assert fid in out
    code, out, err = await run_jetscan(env, "findings", "get", fid)
    assert code == 0, err
    assert f"{second.id}  fixed" in out and f"{first.id}  new" in out
    assert out.count("admin") == 2  # two triage entries, by the admin token


def installed_nmap() -> str:
    return subprocess.run(["nmap", "--version"], capture_output=True, text=True, check=True).stdout


async def test_rederive_rebuilds_what_ingest_built_and_keeps_triage(
    scans: v1.ScanServiceStub, ports: Ports, stack: Stack
) -> None:
    a, b = await ports.opened(2)
    first = await scan(scans, [a, b])
    await ports.close(a)
    second = await scan(scans, [a, b])
    found = await by_port(scans, changed_in_scan=second.id)
    await scans.triage_finding(
        v1.TriageFindingRequest(id=found[b].id, triage=v1.Triage.FALSE_POSITIVE)
    )
    ours = [first.id, second.id]
    query = (
        "SELECT f.id, f.state, f.decided_at, f.first_seen, f.last_seen, f.last_scan_id,"
        " f.fixed_at, f.reopened, f.triage, f.body->>'title' AS title, s.id AS scan_id,"
        " sf.change FROM findings f JOIN scan_findings sf ON sf.finding_key = f.key"
        " JOIN scans s ON s.key = sf.scan_key WHERE s.id = ANY($1::text[]) ORDER BY f.id, s.id"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_DATABASE_URL": stack.settings.database_url,
        "JETSCAN_NATS_URL": stack.settings.nats_url,
    }
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        built = [dict(r) for r in await conn.fetch(query, ours)]
        assert len(built) == 4
        # As a scan from before results named their scanner's version would have it.
        versions = "SELECT DISTINCT scanner_version FROM scans WHERE id = ANY($1::text[])"
        [recorded] = [r[0] for r in await conn.fetch(versions, ours)]
        assert recorded and f"Nmap version {recorded} " in installed_nmap()  # from its XML
        await conn.execute("UPDATE scans SET scanner_version = '' WHERE id = ANY($1)", ours)
        # What an older parser might have left: a wrong title on b, and a finding with a
        # fingerprint today's parser no longer makes.
        await conn.execute(
            "UPDATE findings SET body = jsonb_set(body, '{title}', '\"old title\"') WHERE id = $1",
            found[b].id,
        )
        await conn.execute(
            "INSERT INTO findings (id, tool, target, severity, body, first_seen, last_seen,"
            " last_scan_id, decided_at) SELECT 'stale', tool, target, severity,"
            " jsonb_set(body, '{fingerprint}', '\"old-fp\"'), first_seen, last_seen,"
            " last_scan_id, decided_at FROM findings WHERE id = $1",
            found[b].id,
        )
        await conn.execute(
            "INSERT INTO scan_findings (scan_key, finding_key, severity, change)"
            " SELECT s.key, f.key, 0, 'new' FROM scans s, findings f"
            " WHERE s.id = $1 AND f.id = 'stale'",
            first.id,
        )
        for _ in range(2):  # twice: the second round changes nothing
            for scan_id in ours:
                code, out, err = await run_jetscan(env, "findings", "rederive", "--scan", scan_id)
                assert code == 0, err
                assert out.startswith("re-parsed 1 scans of 1 targets"), out
            assert [dict(r) for r in await conn.fetch(query, ours)] == built
            assert [r[0] for r in await conn.fetch(versions, ours)] == [recorded]
        assert await conn.fetchval("SELECT count(*) FROM findings WHERE id = 'stale'") == 0
        code, _, err = await run_jetscan(env, "findings", "rederive", "--scan", "no-such-scan")
        assert code == 1 and "no scan" in err
    finally:
        await conn.close()
