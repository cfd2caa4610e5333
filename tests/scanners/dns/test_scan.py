"""StartScan → job → recon runner → SUCCEEDED → ListFindings, through the whole stack.

The session stack's launcher has no JETSCAN_PROGRAMS, and subfinder cannot be installed here.
This module swaps that one role for a launcher whose settings name the stand-in subfinder and
dnsx (everything else stays the session's, against the same servers), and puts the original
back afterwards. The shared fixtures stay untouched, and no stand-in lands on a PATH where it
could shadow a real program.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from tests.conftest import Stack, scan_service, wait_status
from tests.corpus import corpus_file
from tests.scanners.dns import standins
from tests.scanners.dns.standins import HOSTS, IN_SCOPE
from tests.scanners.dns.zone import ZoneServer

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Programs:
    subfinder: Path
    dnsx: Path


@pytest.fixture(scope="module")
async def programs(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Programs]:
    folder = tmp_path_factory.mktemp("dns-programs")
    corpus = corpus_file("subfinder/scb__passive_scan_without_ip_example.com.jsonl")
    found = Programs(
        subfinder=standins.subfinder(folder, corpus=corpus, hosts=HOSTS),
        dnsx=standins.dnsx(folder),
    )
    async with stack.launcher_with(
        programs={"subfinder": str(found.subfinder), "dnsx": str(found.dnsx)}
    ):
        yield found


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


def recon_request(config: dict[str, Any]) -> v1.StartScanRequest:
    return v1.StartScanRequest(target="localhost", tool="dns", config=Struct.from_dict(config))


async def succeeded(scans: v1.ScanServiceStub, scan_id: str, within: float = 90) -> v1.Scan:
    return await wait_status(scans, scan_id, {v1.ScanStatus.SUCCEEDED}, within)


async def findings(scans: v1.ScanServiceStub, scan_id: str) -> list[v1.Finding]:
    page = await scans.list_findings(v1.ListFindingsRequest(scan_id=scan_id, page_size=1000))
    assert not page.next_page_token
    return page.findings


async def dns_finding_rows(stack: Stack) -> int:
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM findings WHERE tool = 'dns'"))
    finally:
        await conn.close()


async def console_lines(stack: Stack, scan_id: str, wanted: str, within: float = 20) -> list[str]:
    """The scan's stored console once a line containing `wanted` has arrived."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        while True:
            rows = await conn.fetch(
                "SELECT text FROM scan_output WHERE scan_id = $1 ORDER BY seq", scan_id
            )
            lines = [row["text"] for row in rows]
            if any(wanted in line for line in lines) or loop.time() > deadline:
                return lines
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def test_a_recon_scan_succeeds_with_readable_findings_and_rescans_update_them(
    scans: v1.ScanServiceStub, stack: Stack, programs: Programs, zone: ZoneServer
) -> None:
    before = len(zone.zone.queries)
    request = recon_request({"resolvers": [zone.address], "resolver": "dnspython"})
    first = await succeeded(scans, (await scans.start_scan(request)).id)
    assert first.exit_code == 0
    assert first.finding_counts.medium == 1
    found = await findings(scans, first.id)
    by_title = {f.title: f for f in found}
    assert len(by_title) == len(found) == 16
    www = by_title["Subdomain www.localhost"]
    assert (www.tool, www.host, www.severity) == ("dns", "www.localhost", v1.Severity.INFO)
    assert www.evidence.to_dict()["a"] == ["127.0.0.2"]
    dangling = by_title["Dangling CNAME dangling.localhost -> gone.localhost"]
    assert (dangling.severity, dangling.host) == (v1.Severity.MEDIUM, "dangling.localhost")
    flagged = [f for f in found if f.title.startswith("Out-of-scope name ")]
    assert len(flagged) == 9
    for finding in flagged:
        assert finding.host == ""
        assert finding.evidence.to_dict()["out_of_scope"] == (
            "not localhost or one of its subdomains"
        )
    assert {name for name, _ in zone.zone.queries[before:]} == set(IN_SCOPE)
    # The runner's progress is the scan's live console.
    console = await console_lines(stack, first.id, "[dns] done")
    assert "[dns] not resolving localhost.evil.example: not localhost or one of its subdomains" in (
        console
    )
    assert "[dns] dangling.localhost NXDOMAIN cname=gone.localhost" in console

    rows = await dns_finding_rows(stack)
    second = await succeeded(scans, (await scans.start_scan(request)).id)
    again = {f.fingerprint: f for f in await findings(scans, second.id)}
    assert set(again) == {f.fingerprint for f in found}
    assert await dns_finding_rows(stack) == rows
    for finding in found:
        later = again[finding.fingerprint]
        assert later.id == finding.id
        assert later.first_seen == finding.first_seen
        assert later.last_seen > finding.last_seen


async def test_a_recon_scan_through_dnsx_resolves_only_in_scope_names(
    scans: v1.ScanServiceStub, programs: Programs, zone: ZoneServer
) -> None:
    calls = len(standins.calls(programs.dnsx))
    request = recon_request({"resolvers": [zone.address]})  # auto: the configured dnsx
    done = await succeeded(scans, (await scans.start_scan(request)).id)
    assert done.finding_counts.medium == 1
    (call,) = standins.calls(programs.dnsx)[calls:]
    assert call["stdin"] == IN_SCOPE
    titles = {f.title for f in await findings(scans, done.id)}
    assert "Out-of-scope name localhost.evil.example" in titles
    assert "Subdomain mail.localhost" in titles
