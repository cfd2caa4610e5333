"""Reports end to end: real sslyze and nmap scans of servers this test runs on 127.0.0.1 →
GenerateReport → the reports role → READY → download over HTTP → `jetscan report verify`.

The TLS server's certificate carries the hostile text (typst markup, brackets, dollars, a
right-to-left override, emoji, CJK, a 10 kB name), so it reaches the report as a scanner
reported it: through the parser, PostgreSQL and the snapshot.
"""

from __future__ import annotations

import asyncio
import csv
import importlib.metadata
import io
import json
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import jsonschema
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from nats.aio.client import Client

from contracts import subjects
from contracts.findings import Finding, Severity, fingerprint
from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.nmap import NmapRun
from contracts.results import ScanResult
from contracts.scans import StartScan
from handlers import store
from handlers.reports import pdf
from tests.conftest import Stack, all_findings, run_jetscan, scan_service, wait_status
from tests.handlers.test_report_renderers import DOJO_ALLOWED, DOJO_REQUIRED, SARIF_SCHEMA
from tests.scanners.sslyze.tls_server import self_signed, serving

pytestmark = pytest.mark.slow

ORG = '#read("/etc/passwd") ] $x$ \u202eevil\u202c 🔥 中文 日本語'
LONG_UNIT = "B" * 10_000


@pytest.fixture
def hostile_tls(tmp_path: Path) -> Iterator[int]:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, LONG_UNIT),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, "jetscan ] $1 中文"),
        ]
    )
    with serving(self_signed(tmp_path, ("localhost",), ("127.0.0.1",), subject)) as port:
        yield port


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


@pytest.fixture
async def reports(stack: Stack) -> AsyncIterator[v1.ReportServiceStub]:
    addr = stack.settings.grpc_addr
    channel = Channel(addr.host, addr.port)
    try:
        yield v1.ReportServiceStub(
            channel, metadata={"authorization": f"Bearer {stack.admin_token}"}, timeout=15
        )
    finally:
        channel.close()


async def scan(scans: v1.ScanServiceStub, tool: str, target: str, **config: object) -> v1.Scan:
    started = await scans.start_scan(
        v1.StartScanRequest(target=target, tool=tool, config=Struct.from_dict(dict(config)))
    )
    terminal = {v1.ScanStatus.SUCCEEDED, v1.ScanStatus.FAILED}
    return await wait_status(scans, started.id, terminal, within=120)


async def ready(reports: v1.ReportServiceStub, report_id: str, within: float = 90) -> v1.Report:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        report = await reports.get_report(v1.GetReportRequest(id=report_id))
        if report.status != v1.ReportStatus.PENDING:
            return report
        assert loop.time() < deadline, f"report {report_id} still pending after {within}s"
        await asyncio.sleep(0.2)


async def generate(
    reports: v1.ReportServiceStub, fmt: v1.ReportFormat, scan_ids: list[str]
) -> v1.Report:
    report = await reports.generate_report(
        v1.GenerateReportRequest(scan_ids=v1.ScanIds(ids=scan_ids), format=fmt)
    )
    assert report.status == v1.ReportStatus.PENDING
    done = await ready(reports, report.id)
    assert done.status == v1.ReportStatus.READY, done.error
    return done


async def fetch(stack: Stack, url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or stack.admin_token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url, headers=headers)


def pdf_text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True)
    return out.stdout.decode()


def installed_nmap() -> str:
    return subprocess.run(["nmap", "--version"], check=True, capture_output=True, text=True).stdout


def flat(text: str) -> str:
    return re.sub(r"[\s\u200b]+", "", text)


def cli_env(stack: Stack) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_GRPC_ADDR": str(stack.settings.grpc_addr),
        "JETSCAN_HTTP_ADDR": str(stack.settings.http_addr),
        "JETSCAN_TOKEN": stack.admin_token,
    }


async def test_scans_to_every_format_downloaded_and_verified(
    stack: Stack,
    scans: v1.ScanServiceStub,
    reports: v1.ReportServiceStub,
    hostile_tls: int,
    open_port: int,
    tmp_path: Path,
) -> None:
    tls = await scan(scans, "sslyze", f"127.0.0.1:{hostile_tls}")
    ports = await scan(scans, "nmap", "127.0.0.1", ports=str(open_port), reverse_dns=False)
    assert tls.status == ports.status == v1.ScanStatus.SUCCEEDED, (tls.error, ports.error)
    found = await all_findings(scans, tls.id) + await all_findings(scans, ports.id)
    [untrusted] = [f for f in found if f.title == "Certificate not trusted"]
    subject = json.loads(json.dumps(untrusted.evidence.to_dict()))["subject"]
    assert ORG.split(" ] ")[1] in subject and LONG_UNIT in subject
    ids = [tls.id, ports.id]

    report = await generate(reports, v1.ReportFormat.PDF, ids)
    assert report.download_url == (
        f"http://{stack.settings.http_addr}/reports/{report.id}/report.pdf"
    )
    response = await fetch(stack, report.download_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert f'filename="jetscan-{report.id}-report.pdf"' in response.headers["content-disposition"]
    assert report.size_bytes == len(response.content)
    text = pdf_text(response.content, tmp_path)
    squeezed = flat(text)
    for f in found:
        assert flat(pdf.shown(f.title)) in squeezed, f.title
    assert f"127.0.0.1:{hostile_tls}" in text and f"127.0.0.1:{open_port}" in text
    # The certificate subject as sslyze recorded it (RFC 4514 escapes its quotes), shown
    # literally up to the evidence cut; the override is a visible mark, not a reordering.
    shown_subject = pdf.shown(subject[: pdf.EVIDENCE_CHARS])
    assert flat(re.sub("[\U0001f000-\U0001faff]", "", shown_subject)) in squeezed
    assert "⟨U+202E⟩evil⟨U+202C⟩" in text
    assert "root:x:0" not in text
    assert "Evidence cut at 600 characters per field" in text
    counts = tls.finding_counts
    assert re.search(rf"HIGH\s+{counts.high}\b", text), "the summary's count of high findings"
    assert report.snapshot_sha256 in text

    # Every other format of the same scans; `jetscan report verify` re-renders each one.
    env = cli_env(stack)
    made = {v1.ReportFormat.PDF: report}
    for fmt in (
        v1.ReportFormat.JSON,
        v1.ReportFormat.SARIF,
        v1.ReportFormat.DEFECTDOJO,
        v1.ReportFormat.CSV,
    ):
        made[fmt] = await generate(reports, fmt, ids)
    for fmt, r in made.items():
        code, out, err = await run_jetscan(env, "report", "verify", r.id)
        assert code == 0, (fmt, err)
        assert "identical" in out

    sarif = json.loads((await fetch(stack, made[v1.ReportFormat.SARIF].download_url)).content)
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(sarif)
    assert {run["tool"]["driver"]["name"] for run in sarif["runs"]} == {"sslyze", "nmap"}

    dojo = json.loads((await fetch(stack, made[v1.ReportFormat.DEFECTDOJO].download_url)).content)
    assert len(dojo["findings"]) == len(found)
    for item in dojo["findings"]:
        assert DOJO_REQUIRED <= set(item) <= DOJO_ALLOWED
    assert {i["unique_id_from_tool"] for i in dojo["findings"]} == {f.fingerprint for f in found}

    table = (await fetch(stack, made[v1.ReportFormat.CSV].download_url)).content.decode()
    assert len(list(csv.DictReader(io.StringIO(table)))) == len(found)

    document = json.loads((await fetch(stack, made[v1.ReportFormat.JSON].download_url)).content)
    assert document["snapshot_sha256"] == made[v1.ReportFormat.JSON].snapshot_sha256
    assert {s["id"] for s in document["snapshot"]["scans"]} == set(ids)
    # Each scan's result names its scanner's version: nmap's XML, sslyze's JSON.
    nmap_version = installed_nmap()
    versions = {s["tool"]: s["scanner_version"] for s in document["snapshot"]["scans"]}
    assert versions["sslyze"] == importlib.metadata.version("sslyze")
    assert versions["nmap"] and f"Nmap version {versions['nmap']} " in nmap_version
    for version in versions.values():
        assert flat(f"Scanner version: {version}.") in squeezed

    # A target's findings as they stand now: the sslyze target's, all new since its scan.
    by_target = await reports.generate_report(
        v1.GenerateReportRequest(target=tls.target, format=v1.ReportFormat.JSON)
    )
    by_target = await ready(reports, by_target.id)
    assert by_target.status == v1.ReportStatus.READY, by_target.error
    assert list(by_target.scan_ids) == [tls.id]
    snap = json.loads((await fetch(stack, by_target.download_url)).content)["snapshot"]
    assert snap["subject"]["kind"] == "target"
    titles = {a["title"]: a["change"] for r in snap["rules"] for a in r["affected"]}
    assert titles["Certificate not trusted"] == "new"
    assert all(a["target"] == tls.target for r in snap["rules"] for a in r["affected"])

    page = await reports.list_reports(
        v1.ListReportsRequest(scan_id=ports.id, format=v1.ReportFormat.SARIF)
    )
    assert [r.id for r in page.reports] == [made[v1.ReportFormat.SARIF].id]

    # `jetscan report download` writes the file the edge serves.
    out_file = tmp_path / "again.pdf"
    code, _, err = await run_jetscan(env, "report", "download", report.id, "-o", str(out_file))
    assert code == 0, err
    assert out_file.read_bytes() == response.content


async def test_downloads_need_a_token_and_a_file_of_the_report(
    stack: Stack,
    scans: v1.ScanServiceStub,
    reports: v1.ReportServiceStub,
    open_port: int,
    tmp_path: Path,
    nc: Client,
) -> None:
    ports = await scan(scans, "nmap", "127.0.0.1", ports=str(open_port), reverse_dns=False)
    report = await generate(reports, v1.ReportFormat.CSV, [ports.id])
    event = await nc.jetstream().get_last_msg("EVENTS", f"evt.report.{report.id}.ready")
    announced = json.loads(event.data or b"")
    assert (announced["size_bytes"], announced["sha256"]) == (report.size_bytes, report.sha256)
    assert announced["snapshot_sha256"] == report.snapshot_sha256
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(report.download_url)).status_code == 401
    assert (await fetch(stack, report.download_url, token="not-a-token")).status_code == 401
    base = report.download_url.rsplit("/", 1)[0]
    assert (await fetch(stack, f"{base}/report.pdf")).status_code == 404
    snapshot = await fetch(stack, f"{base}/snapshot.json")
    assert snapshot.status_code == 200
    assert json.loads(snapshot.content)["report_id"] == report.id

    # The CLI: create, wait and download in one command.
    out_file = tmp_path / "findings.csv"
    code, out, err = await run_jetscan(
        cli_env(stack),
        "report",
        "create",
        "--scan",
        ports.id,
        "--format",
        "csv",
        "-o",
        str(out_file),
        "--json",
    )
    assert code == 0, err
    made = json.loads(out)
    assert made["status"] in ("READY", "REPORT_STATUS_READY"), made
    assert out_file.read_text().startswith("snapshot_sha256,rule_id")
    code, out, _ = await run_jetscan(
        cli_env(stack), "report", "list", "--scan", ports.id, "--format", "csv", "--json"
    )
    assert code == 0 and made["id"] in out


async def test_a_partial_scan_is_called_out_and_a_failed_report_says_why(
    scans: v1.ScanServiceStub,
    reports: v1.ReportServiceStub,
    tmp_path: Path,
    stack: Stack,
    nc: Client,
) -> None:
    # sslyze against a port nothing listens on: the scan reaches nothing and fails.
    closed = await scan(scans, "sslyze", "127.0.0.1:1")
    assert closed.status == v1.ScanStatus.FAILED
    report = await generate(reports, v1.ReportFormat.PDF, [closed.id])
    text = pdf_text((await fetch(stack, report.download_url)).content, tmp_path)
    assert "Incomplete results" in text
    assert "failed, partial" in text
    assert flat(closed.error[:40]) in flat(text)

    missing = await reports.generate_report(
        v1.GenerateReportRequest(schedule_id="no-such-schedule", format=v1.ReportFormat.JSON)
    )
    failed = await ready(reports, missing.id)
    assert failed.status == v1.ReportStatus.FAILED
    assert "no-such-schedule has no scan yet" in failed.error
    assert failed.download_url == ""
    event = await nc.jetstream().get_last_msg("EVENTS", f"evt.report.{failed.id}.failed")
    assert json.loads(event.data or b"")["error"] == failed.error


async def test_generate_validates_and_is_idempotent(
    scans: v1.ScanServiceStub, reports: v1.ReportServiceStub, open_port: int
) -> None:
    for request, field in (
        (v1.GenerateReportRequest(domain="example.com"), "format"),
        (v1.GenerateReportRequest(format=v1.ReportFormat.PDF), "subject"),
        (
            v1.GenerateReportRequest(scan_ids=v1.ScanIds(ids=["a.b"]), format=v1.ReportFormat.PDF),
            "scan_ids",
        ),
        (
            v1.GenerateReportRequest(
                scan_ids=v1.ScanIds(ids=["x"]), format=v1.ReportFormat.PDF, since=None
            ),
            "scan",
        ),
    ):
        with pytest.raises(GRPCError) as err:
            await reports.generate_report(request)
        assert err.value.status in (Status.INVALID_ARGUMENT, Status.NOT_FOUND)
        assert field in (err.value.message or ""), err.value.message
    ports = await scan(scans, "nmap", "127.0.0.1", ports=str(open_port), reverse_dns=False)
    request = v1.GenerateReportRequest(
        scan_ids=v1.ScanIds(ids=[ports.id]), format=v1.ReportFormat.JSON, request_id="once"
    )
    first = await reports.generate_report(request)
    second = await reports.generate_report(request)
    assert first.id == second.id
    with pytest.raises(GRPCError) as err:
        await reports.get_report(v1.GetReportRequest(id="nope"))
    assert err.value.status == Status.NOT_FOUND


async def record_scan(
    stack: Stack,
    scan_id: str,
    n: int,
    *,
    at: datetime,
    target: str = "127.0.0.9",
    domain: str = "",
    schedule_id: str = "",
) -> None:
    """A succeeded nmap scan of `target` with `n` open ports, recorded as ingest records one
    (its store functions, on the stack's database)."""
    start = StartScan(
        scan_id=scan_id,
        target=target,
        domain=domain,
        tool="nmap",
        config={},
        deadline_seconds=60,
        requested_by="scheduler",
        requested_at=at,
        schedule_id=schedule_id,
    )
    findings = tuple(
        Finding(
            tool="nmap",
            severity=Severity.LOW,
            title=f"Open port {p}/tcp",
            fingerprint=fingerprint("nmap", target, "tcp", p),
            host=target,
            port=p,
            protocol="tcp",
        )
        for p in range(1, n + 1)
    )
    result = ScanResult(
        scan_id=scan_id,
        tool="nmap",
        target=target,
        finished_at=at,
        exit_code=0,
        partial=False,
        findings=findings,
        data=NmapRun(),
    )
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await store.insert_scans(conn, [start])
        await store.store_result(conn, result)
    finally:
        await conn.close()


async def test_a_schedule_s_latest_scan_and_a_pdf_too_large_to_render(
    stack: Stack, reports: v1.ReportServiceStub
) -> None:
    """Scans recorded as ingest records them (its store functions, on the stack's database):
    two scans of one schedule, the latest with more findings than a PDF may hold."""
    schedule = f"nightly-{uuid.uuid4().hex[:8]}"
    domain = f"{schedule}.localhost"
    now = datetime.now(UTC)
    ids = [uuid.uuid4().hex, uuid.uuid4().hex]
    many = pdf.MAX_FINDINGS + 1
    for i, scan_id in enumerate(ids):
        await record_scan(
            stack,
            scan_id,
            many if i else 3,
            at=now + timedelta(seconds=i),
            domain=domain,
            schedule_id=schedule,
        )

    request = v1.GenerateReportRequest(schedule_id=schedule, format=v1.ReportFormat.CSV)
    table = await ready(reports, (await reports.generate_report(request)).id)
    assert table.status == v1.ReportStatus.READY, table.error
    assert list(table.scan_ids) == [ids[1]]
    assert table.schedule_id == schedule

    request = v1.GenerateReportRequest(schedule_id=schedule, format=v1.ReportFormat.PDF)
    refused = await ready(reports, (await reports.generate_report(request)).id)
    assert refused.status == v1.ReportStatus.FAILED
    assert f"this report has {many:,}" in refused.error
    assert refused.error.startswith("rendering pdf failed: a PDF lists at most")

    # The domain's findings as they stand: each seen by both scans, first in the first.
    request = v1.GenerateReportRequest(
        domain=domain, format=v1.ReportFormat.JSON, since=now + timedelta(milliseconds=500)
    )
    by_domain = await ready(reports, (await reports.generate_report(request)).id)
    assert by_domain.status == v1.ReportStatus.READY, by_domain.error
    snap = json.loads((await fetch(stack, by_domain.download_url)).content)["snapshot"]
    changes = [a["change"] for r in snap["rules"] for a in r["affected"]]
    assert len(changes) == many
    assert changes.count("unchanged") == 3 and changes.count("new") == many - 3
    page = await reports.list_reports(v1.ListReportsRequest(domain=domain))
    assert {r.id for r in page.reports} >= {by_domain.id, table.id}


async def test_a_long_render_holds_up_neither_pings_nor_other_reports(
    stack: Stack, reports: v1.ReportServiceStub, nc: Client
) -> None:
    big, small = uuid.uuid4().hex, uuid.uuid4().hex
    await record_scan(stack, big, 8000, at=datetime.now(UTC), target="127.0.0.10")
    await record_scan(stack, small, 2, at=datetime.now(UTC), target="127.0.0.11")
    slow = await reports.generate_report(
        v1.GenerateReportRequest(scan_ids=v1.ScanIds(ids=[big]), format=v1.ReportFormat.PDF)
    )
    quick = await reports.generate_report(
        v1.GenerateReportRequest(scan_ids=v1.ScanIds(ids=[small]), format=v1.ReportFormat.JSON)
    )
    done = await ready(reports, quick.id)
    assert done.status == v1.ReportStatus.READY, done.error
    # The PDF of 8,000 findings is still rendering, in its own process; the role answers.
    pending = await reports.get_report(v1.GetReportRequest(id=slow.id))
    assert pending.status == v1.ReportStatus.PENDING
    pong = await nc.request(subjects.service_ping("jetscan-reports"), b"", timeout=2)
    assert json.loads(pong.data)["name"] == "jetscan-reports"
    finished = await ready(reports, slow.id, within=180)
    assert finished.status == v1.ReportStatus.READY, finished.error
