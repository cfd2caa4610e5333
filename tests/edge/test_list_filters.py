"""ListScans' target and time range, ListFindings' exact severity: through the real edge and
queries service, and their refusals naming the field."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest
from grpclib import GRPCError
from grpclib.const import Status

from contracts.findings import Finding, Severity, fingerprint
from contracts.gen.jetscan import v1
from tests.conftest import Stack, scan_service

BASE = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


async def _insert_scans(url: str, domain: str) -> list[tuple[str, str, datetime]]:
    """Six scans of two targets of `domain`, an hour apart: (id, target, created_at)."""
    rows = [
        (f"{uuid.uuid4().hex}", f"{'www' if i % 2 else 'api'}.{domain}", BASE + timedelta(hours=i))
        for i in range(6)
    ]
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at)"
            " VALUES ($1, $2, $3, 'nmap', 'succeeded', 600, $4)",
            [(i, t, domain, at) for i, t, at in rows],
        )
    finally:
        await conn.close()
    return rows


async def _all(scans: v1.ScanServiceStub, req: v1.ListScansRequest) -> list[str]:
    seen: list[str] = []
    while True:
        page = await scans.list_scans(req)
        seen += [s.id for s in page.scans]
        if not page.next_page_token:
            return seen
        req.page_token = page.next_page_token


async def test_list_scans_by_target_and_time_range(scans: v1.ScanServiceStub, stack: Stack) -> None:
    domain = f"f{uuid.uuid4().hex[:8]}.example"
    rows = await _insert_scans(stack.settings.database_url, domain)
    newest_first = [r for r in reversed(rows)]
    www = [i for i, t, _ in newest_first if t.startswith("www.")]
    # The target as a user may type it: a name in capitals, with its trailing dot.
    got = await _all(scans, v1.ListScansRequest(target=f"WWW.{domain.upper()}.", page_size=1))
    assert got == www
    # since is inclusive, until exclusive; paging keeps both.
    window = await _all(
        scans,
        v1.ListScansRequest(
            domain=domain,
            since=BASE + timedelta(hours=1),
            until=BASE + timedelta(hours=4),
            page_size=2,
        ),
    )
    assert window == [rows[3][0], rows[2][0], rows[1][0]]
    only_since = await _all(scans, v1.ListScansRequest(domain=domain, since=rows[4][2]))
    assert only_since == [rows[5][0], rows[4][0]]
    only_until = await _all(scans, v1.ListScansRequest(domain=domain, until=rows[1][2]))
    assert only_until == [rows[0][0]]
    both = await _all(
        scans, v1.ListScansRequest(target=f"api.{domain}", until=rows[3][2], since=BASE)
    )
    assert both == [rows[2][0], rows[0][0]]


async def test_a_page_token_is_bound_to_its_target_and_range(
    scans: v1.ScanServiceStub, stack: Stack
) -> None:
    domain = f"t{uuid.uuid4().hex[:8]}.example"
    await _insert_scans(stack.settings.database_url, domain)
    page = await scans.list_scans(v1.ListScansRequest(domain=domain, since=BASE, page_size=1))
    assert page.next_page_token
    for other in (
        v1.ListScansRequest(domain=domain, since=BASE + timedelta(seconds=1)),
        v1.ListScansRequest(domain=domain, since=BASE, target=f"www.{domain}"),
        v1.ListScansRequest(domain=domain, since=BASE, until=BASE + timedelta(days=1)),
    ):
        other.page_token = page.next_page_token
        with pytest.raises(GRPCError) as err:
            await scans.list_scans(other)
        assert err.value.status == Status.INVALID_ARGUMENT
        assert "page_token" in (err.value.message or "")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (v1.ListScansRequest(since=BASE, until=BASE), "until:"),
        (v1.ListScansRequest(since=BASE + timedelta(1), until=BASE), "until:"),
        (v1.ListScansRequest(target="a b"), "target:"),
        (v1.ListScansRequest(target="-bad-.example"), "target:"),
        (v1.ListScansRequest(schedule_id="a.b"), "schedule_id:"),
        (v1.ListScansRequest(tool="nope"), "tool:"),
    ],
)
async def test_list_scans_refuses_bad_filters(
    scans: v1.ScanServiceStub, request_: v1.ListScansRequest, field: str
) -> None:
    with pytest.raises(GRPCError) as err:
        await scans.list_scans(request_)
    assert err.value.status == Status.INVALID_ARGUMENT
    assert (err.value.message or "").startswith(field), err.value.message


async def _insert_findings(url: str, target: str) -> dict[Severity, str]:
    """One open nmap finding of each severity on `target` (the medium one overridden to
    critical), seen by one scan: {reported severity: id}."""
    scan_id = uuid.uuid4().hex
    ids: dict[Severity, str] = {}
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at)"
            " VALUES ($1, $2, 'sev.example', 'nmap', 'succeeded', 600, $3)",
            scan_id,
            target,
            BASE,
        )
        for sev in Severity:
            fid = uuid.uuid4().hex
            f = Finding(
                tool="nmap",
                severity=sev,
                title=f"a {sev} finding",
                fingerprint=fingerprint("nmap", target, sev.value),
            )
            override = Severity.CRITICAL.rank if sev is Severity.MEDIUM else None
            await conn.execute(
                "INSERT INTO findings (id, tool, target, domain, severity, body,"
                " first_seen, last_seen, last_scan_id, decided_at, severity_override)"
                " VALUES ($1, 'nmap', $2, 'sev.example', $3, $4::jsonb, $5, $5, $6, $5, $7)",
                fid,
                target,
                sev.rank,
                msgspec.json.encode(f).decode(),
                BASE,
                scan_id,
                override,
            )
            await conn.execute(
                "INSERT INTO scan_findings (scan_key, finding_key, severity, change)"
                " SELECT s.key, f.key, $3, 'new' FROM scans s, findings f"
                " WHERE s.id = $1 AND f.id = $2",
                scan_id,
                fid,
                sev.rank,
            )
            ids[sev] = fid
    finally:
        await conn.close()
    return ids


async def test_list_findings_by_exact_severity(scans: v1.ScanServiceStub, stack: Stack) -> None:
    target = f"h{uuid.uuid4().hex[:8]}.sev.example"
    ids = await _insert_findings(stack.settings.database_url, target)
    overridden = ids[Severity.MEDIUM]

    async def listed(**kw: object) -> list[str]:
        page = await scans.list_findings(v1.ListFindingsRequest(target=target, **kw))  # type: ignore[arg-type]
        return [f.id for f in page.findings]

    assert await listed(severity=v1.Severity.HIGH) == [ids[Severity.HIGH]]
    assert await listed(severity=v1.Severity.INFO) == [ids[Severity.INFO]]
    # The severity that counts: the medium finding overridden to critical is a critical one.
    assert sorted(await listed(severity=v1.Severity.CRITICAL)) == sorted(
        [ids[Severity.CRITICAL], overridden]
    )
    assert await listed(severity=v1.Severity.MEDIUM) == []
    # With a floor too: both narrow.
    assert await listed(severity=v1.Severity.LOW, min_severity=v1.Severity.HIGH) == []
    # The target as typed, normalised like ListScans'.
    page = await scans.list_findings(
        v1.ListFindingsRequest(target=target.upper() + ".", severity=v1.Severity.HIGH)
    )
    assert [f.id for f in page.findings] == [ids[Severity.HIGH]]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (v1.ListFindingsRequest(severity=99), "severity:"),  # type: ignore[arg-type]
        (v1.ListFindingsRequest(target="a b"), "target:"),
        (v1.ListFindingsRequest(tool="nope"), "tool:"),
    ],
)
async def test_list_findings_refuses_bad_filters(
    scans: v1.ScanServiceStub, request_: v1.ListFindingsRequest, field: str
) -> None:
    with pytest.raises(GRPCError) as err:
        await scans.list_findings(request_)
    assert err.value.status == Status.INVALID_ARGUMENT
    assert (err.value.message or "").startswith(field), err.value.message
