"""Snapshots for renderer tests, built by the snapshot module's pure half from finding rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.findings import Finding, Severity, fingerprint
from contracts.reports import GenerateReport, ReportFormat, ReportOptions, ScanSummary, Snapshot
from contracts.tracking import Change, FindingState, Triage
from handlers.reports.snapshot import Row, assemble

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
LONG = "A" * 10_000
HOSTILE = [
    '#read("/etc/passwd")',
    "closing ] bracket",
    "$x^2$ dollars",
    "rtl \u202eevil\u202c override",
    "emoji 🔥🛡️",
    "中文 日本語 한국어",
]


def scan(scan_id: str, tool: str = "nmap", *, partial: bool = False) -> ScanSummary:
    return ScanSummary(
        id=scan_id,
        tool=tool,
        target="127.0.0.1",
        domain="",
        status="failed" if partial else "succeeded",
        config={"ports": "1-1024"},
        created_at=AT,
        started_at=AT,
        finished_at=AT + timedelta(seconds=12.5),
        duration_seconds=12.5,
        exit_code=6 if partial else 0,
        partial=partial,
        error="nmap stopped early" if partial else "",
        scanner_version="",
        schedule_id="",
    )


def row(
    n: int,
    *,
    tool: str = "nmap",
    severity: Severity = Severity.INFO,
    title: str = "",
    description: str = "",
    evidence: dict[str, object] | None = None,
    change: Change = Change.NEW,
    triage: Triage = Triage.NONE,
    url: str = "",
) -> Row:
    port = 1000 + n
    f = Finding(
        tool=tool,
        severity=severity,
        title=title or f"Open port {port}/tcp",
        fingerprint=fingerprint(tool, "127.0.0.1", "tcp", port, title),
        description=description,
        host="127.0.0.1",
        port=port,
        protocol="tcp",
        url=url,
        evidence=evidence or {"reason": "syn-ack"},
        references=("https://example.org/ref",) if severity is not Severity.INFO else (),
    )
    return Row(
        id=f"f{n:05d}",
        finding=f,
        target="127.0.0.1",
        state=FindingState.FIXED if change is Change.FIXED else FindingState.OPEN,
        change=change,
        triage=triage,
        first_seen=AT - timedelta(days=3),
        last_seen=AT,
        severity=severity,
        scanner_severity=severity,
        scan_id="scan-1",
    )


def command(fmt: ReportFormat = ReportFormat.JSON, **options: object) -> GenerateReport:
    return GenerateReport(
        report_id="rep-1",
        format=fmt,
        requested_by="test",
        requested_at=AT,
        scan_ids=("scan-1",),
        options=ReportOptions(**options),  # type: ignore[arg-type]
    )


def hostile(*, partial: bool = False) -> Snapshot:
    """A small snapshot whose scanner text carries every hostile case."""
    rows = [
        row(i, title=f"Service banner {text}", description=text, evidence={"banner": text})
        for i, text in enumerate(HOSTILE)
    ]
    rows.append(row(10, title="Long banner", evidence={"banner": f"x {LONG} y"}, description=LONG))
    rows.append(
        row(
            11,
            tool="zap",
            severity=Severity.HIGH,
            title="=cmd|' /C calc'!A0",
            url="https://127.0.0.1:8443/login?x=1",
            evidence={
                "alert_ref": "10010",
                "solution": "Set the HttpOnly flag.",
                "instances": [
                    {
                        "uri": "https://127.0.0.1:8443/login",
                        "evidence": "Set-Cookie: session=SECRET123\nAuthorization: Bearer TOKEN456",
                    }
                ],
                "cwe_id": 1004,
                "param": "session",
            },
        )
    )
    rows.append(row(12, severity=Severity.MEDIUM, title="TLS 1.0 accepted", change=Change.FIXED))
    rows.append(row(13, severity=Severity.LOW, title="Ignored", triage=Triage.FALSE_POSITIVE))
    return assemble(command(), AT, [scan("scan-1", partial=partial)], rows)


def sized(n: int) -> Snapshot:
    """`n` findings over a few rules and every severity, as a large scan gives them."""
    severities = list(Severity)
    rows = [
        row(
            i,
            severity=severities[i % 5],
            title=f"Check {i % 40}",
            description=f"What check {i % 40} found on this port.",
            evidence={"reason": "syn-ack", "detail": f"value {i}"},
            change=Change.UNCHANGED if i % 3 else Change.NEW,
        )
        for i in range(n)
    ]
    return assemble(command(), AT, [scan("scan-1")], rows)
