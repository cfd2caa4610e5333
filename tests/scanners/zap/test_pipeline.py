"""StartScan → a ZAP job → findings through ListFindings: the whole pipeline, with the
`zap.sh` stand-in as the configured ZAP.

The session `stack` runs with no programs configured, and its launcher is the only consumer
of the scan commands (a second launcher on the same durable consumer would take half of
them). So for this module the stack's launcher is stopped and one started in its place whose
Settings name the stand-in as `zap.sh`, against the same NATS and PostgreSQL, through the
same `workers.roles.supervise` the stack uses; the stack's own launcher comes back after.
Every other role (edge, ingest, queries) is the session's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from scanners import TOOLS
from tests.conftest import Stack, all_findings, scan_service, wait_status
from tests.corpus import corpus_file
from tests.scanners.zap.standin import write_standin

pytestmark = pytest.mark.slow
REPORT = "zap/bcgov-pt-2.14.0__report_json.json"


@pytest.fixture(scope="module")
async def zap_home(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Path]:
    """The stand-in's folder, while a launcher that knows it as `zap.sh` runs."""
    home = tmp_path_factory.mktemp("zap-standin")
    standin = write_standin(home, corpus_file(REPORT))
    async with stack.launcher_with(programs={**stack.settings.programs, "zap.sh": str(standin)}):
        yield home


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


def zap_request(target: str, deadline: int = 0, **config: object) -> v1.StartScanRequest:
    return v1.StartScanRequest(
        target=target, tool="zap", config=Struct.from_dict(config), deadline_seconds=deadline
    )


async def test_a_zap_scan_succeeds_and_its_findings_are_listed(
    scans: v1.ScanServiceStub, zap_home: Path
) -> None:
    started = await scans.start_scan(
        zap_request("http://127.0.0.1:8080/", spider_minutes=1, passive_wait_minutes=1)
    )
    assert (started.status, started.tool) == (v1.ScanStatus.QUEUED, "zap")
    done = await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED})
    assert done.exit_code == 0

    expected = TOOLS["zap"].parse(corpus_file(REPORT).read_bytes()).findings
    found = {f.fingerprint: f for f in await all_findings(scans, started.id)}
    assert sorted(found) == sorted(f.fingerprint for f in expected)
    assert done.finding_counts.medium == sum(f.severity.value == "medium" for f in expected)
    for finding in expected:
        row = found[finding.fingerprint]
        assert (row.tool, row.title, row.url, row.host, row.port) == (
            "zap",
            finding.title,
            finding.url,
            finding.host,
            finding.port,
        )
        assert tuple(row.references) == finding.references


async def test_a_rescan_moves_last_seen_instead_of_adding_findings(
    scans: v1.ScanServiceStub, zap_home: Path, stack: Stack
) -> None:
    request = zap_request("http://127.0.0.1:8080/again/", spider_minutes=1)
    first = await scans.start_scan(request)
    await wait_status(scans, first.id, {v1.ScanStatus.SUCCEEDED})
    before = {f.fingerprint: f for f in await all_findings(scans, first.id)}
    second = await scans.start_scan(request)
    await wait_status(scans, second.id, {v1.ScanStatus.SUCCEEDED})
    after = {f.fingerprint: f for f in await all_findings(scans, second.id)}

    assert after.keys() == before.keys()
    for key, finding in after.items():
        assert finding.id == before[key].id
        assert finding.first_seen == before[key].first_seen
        assert finding.last_seen > before[key].last_seen
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        rows = await conn.fetchval(
            # A finding is one fingerprint on one target: other tests scan other targets.
            "SELECT count(*) FROM findings WHERE tool = 'zap' AND body->>'fingerprint' = ANY($1)"
            " AND target = $2",
            list(after),
            request.target,
        )
    finally:
        await conn.close()
    assert rows == len(after)


async def test_a_zap_that_hangs_is_timed_out_within_the_deadline_and_grace(
    scans: v1.ScanServiceStub, zap_home: Path
) -> None:
    deadline = 3
    started = await scans.start_scan(zap_request("http://127.0.0.1:8080/hang/", deadline))
    done = await wait_status(scans, started.id, {v1.ScanStatus.TIMED_OUT})
    assert "deadline" in done.error, done.error
    # The stand-in ignores SIGTERM: a SIGKILL after the grace ended it (the job's, or the
    # launcher's backstop when a loaded machine slows the job's start). No upper bound on the
    # wall clock here: a loaded machine stretches it; TIMED_OUT with its reason is the check.
    elapsed = (done.finished_at - done.started_at).total_seconds()
    assert elapsed >= deadline, elapsed
    hung = int((zap_home / "hung.pid").read_text())
    assert not Path(f"/proc/{hung}").exists()
