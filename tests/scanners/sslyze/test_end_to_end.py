"""StartScan → the local executor → real sslyze against a real TLS server → ListFindings.

The server is this test's own, on 127.0.0.1, with a fresh self-signed certificate whose names
cover 127.0.0.1, so the one thing wrong with it is trust. sslyze is the real CLI, run by the
job with the job's own interpreter: no stand-in, no JETSCAN_PROGRAMS, so the session's
shared stack runs it as configured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from scanners import TOOLS
from tests.conftest import Stack, all_findings, scan_service, wait_status
from tests.scanners.sslyze.tls_server import self_signed, serving

pytestmark = pytest.mark.slow


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


@pytest.fixture
def tls_port(tmp_path: Path) -> Iterator[int]:
    with serving(self_signed(tmp_path, ("localhost",), ("127.0.0.1",))) as port:
        yield port


async def scan_to_success(scans: v1.ScanServiceStub, target: str) -> v1.Scan:
    request = v1.StartScanRequest(target=target, tool="sslyze", config=Struct.from_dict({}))
    started = await scans.start_scan(request)
    # A few seconds alone; generous for a loaded machine.
    return await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED}, within=120)


async def test_a_rescan_finds_the_untrusted_certificate_again_without_new_rows(
    scans: v1.ScanServiceStub, stack: Stack, nc: Client, tls_port: int
) -> None:
    target = f"127.0.0.1:{tls_port}"
    first = await scan_to_success(scans, target)
    assert (first.target, first.exit_code) == (target, 0)
    assert first.finding_counts.high >= 1
    found = await all_findings(scans, first.id)
    [untrusted] = [f for f in found if f.title == "Certificate not trusted"]
    assert untrusted.severity == v1.Severity.HIGH
    assert (untrusted.tool, untrusted.host, untrusted.port) == ("sslyze", "127.0.0.1", tls_port)
    assert "(self-signed)" in untrusted.description
    # The names cover 127.0.0.1 and Python's ssl speaks only TLS 1.2 and 1.3.
    assert {f.title for f in found} == {"Certificate not trusted"}

    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        count_rows = "SELECT count(*) FROM findings WHERE tool = 'sslyze' AND body->>'port' = $1"
        rows_before = await conn.fetchval(count_rows, str(tls_port))
        assert rows_before == len(found)
        artifact, partial = await conn.fetchrow(
            "SELECT artifact, partial FROM scans WHERE id = $1", first.id
        )
        assert not partial

        second = await scan_to_success(scans, target)
        again = await all_findings(scans, second.id)
        assert {(f.id, f.fingerprint) for f in again} == {(f.id, f.fingerprint) for f in found}
        assert await conn.fetchval(count_rows, str(tls_port)) == rows_before
        links = await conn.fetch(
            "SELECT s.id AS scan_id FROM scan_findings l JOIN scans s ON s.key = l.scan_key"
            " JOIN findings f ON f.key = l.finding_key WHERE f.id = $1",
            untrusted.id,
        )
        assert {r["scan_id"] for r in links} == {first.id, second.id}
        last_scan, first_seen, last_seen = await conn.fetchrow(
            "SELECT last_scan_id, first_seen, last_seen FROM findings WHERE id = $1",
            untrusted.id,
        )
        assert last_scan == second.id and last_seen > first_seen
    finally:
        await conn.close()

    # The raw JSON is kept, and reads back to the same findings.
    stored = await (await nc.jetstream().object_store("artifacts")).get(artifact)
    assert stored.data is not None
    raw = TOOLS["sslyze"].parse(stored.data)
    assert {f.fingerprint for f in raw.findings} == {f.fingerprint for f in found}
