"""Reports: the generate command, its events, the stored report, and the snapshot document
every format is rendered from (see docs/architecture.md, "Reports")."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Any

import msgspec

from contracts.findings import Severity
from contracts.tracking import Change, FindingState, Triage

SNAPSHOT_SCHEMA = "jetscan.report.snapshot/1"


class ReportFormat(enum.StrEnum):
    PDF = "pdf"
    JSON = "json"
    SARIF = "sarif"
    DEFECTDOJO = "defectdojo"
    CSV = "csv"


# The rendered file's name and content type, per format.
FILES: dict[ReportFormat, tuple[str, str]] = {
    ReportFormat.PDF: ("report.pdf", "application/pdf"),
    ReportFormat.JSON: ("report.json", "application/json"),
    ReportFormat.SARIF: ("report.sarif", "application/sarif+json"),
    ReportFormat.DEFECTDOJO: ("defectdojo.json", "application/json"),
    ReportFormat.CSV: ("report.csv", "text/csv; charset=utf-8"),
}
SNAPSHOT_FILE = "snapshot.json"


def object_name(report_id: str, file: str) -> str:
    """Where a report's file lives in the `artifacts` object store."""
    return f"reports/{report_id}/{file}"


class ReportStatus(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class ReportOptions(msgspec.Struct, frozen=True, kw_only=True):
    min_severity: Severity = Severity.INFO
    # Findings triaged as false positive or accepted risk are left out unless this is set.
    include_triaged: bool = False
    # For a domain or target: changes since this time (default: since the findings' start).
    since: datetime | None = None


class GenerateReport(msgspec.Struct, frozen=True, kw_only=True, tag="report.generate"):
    """`cmd.report.<id>.generate`: render the findings of exactly one subject: `scan_ids`,
    a `domain`, a `target`, or the latest scan of `schedule_id`."""

    report_id: str
    format: ReportFormat
    requested_by: str
    requested_at: datetime
    scan_ids: tuple[str, ...] = ()
    domain: str = ""
    target: str = ""
    schedule_id: str = ""
    options: ReportOptions = ReportOptions()
    request_id: str = ""


class ReportEvent(msgspec.Struct, frozen=True, kw_only=True):
    """`evt.report.<id>.<ready|failed>`: size and sha256 of the rendered file."""

    report_id: str
    status: ReportStatus
    at: datetime
    file: str = ""
    size_bytes: int = 0
    sha256: str = ""
    snapshot_sha256: str = ""
    error: str = ""


class ReportView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: ReportStatus
    format: ReportFormat
    created_at: datetime
    scan_ids: tuple[str, ...] = ()
    domain: str = ""
    target: str = ""
    schedule_id: str = ""
    file: str = ""
    ready_at: datetime | None = None
    size_bytes: int = 0
    sha256: str = ""
    snapshot_sha256: str = ""
    error: str = ""


def pending(cmd: GenerateReport) -> ReportView:
    """A report as its command describes it, before the reports role has picked it up."""
    return ReportView(
        id=cmd.report_id,
        status=ReportStatus.PENDING,
        format=cmd.format,
        created_at=cmd.requested_at,
        scan_ids=cmd.scan_ids,
        domain=cmd.domain,
        target=cmd.target,
        schedule_id=cmd.schedule_id,
        file=FILES[cmd.format][0],
    )


class GetReport(msgspec.Struct, frozen=True, kw_only=True):
    """`query.report.get`."""

    id: str


class ListReports(msgspec.Struct, frozen=True, kw_only=True):
    """`query.report.list`: newest first; every filter given must match."""

    domain: str = ""
    scan_id: str = ""
    format: ReportFormat | None = None
    page_size: int = 50
    page_token: str = ""


class ReportPage(msgspec.Struct, frozen=True, kw_only=True):
    reports: list[ReportView]
    next_page_token: str = ""


# The snapshot: the report's JSON document, frozen once from PostgreSQL. Field order is the
# encoding order and lists are sorted by the snapshot builder, so equal data gives equal bytes.


class Affected(msgspec.Struct, frozen=True, kw_only=True):
    """One finding (one place) under its rule."""

    finding_id: str
    title: str
    target: str
    host: str
    port: int | None
    protocol: str
    url: str
    uri: str
    severity: Severity
    scanner_severity: Severity
    state: FindingState
    change: Change
    triage: Triage
    first_seen: datetime
    last_seen: datetime
    fingerprint: str
    scan_id: str
    description: str
    evidence: dict[str, Any]


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """Findings of one tool that share a check, with every place it was found."""

    id: str
    tool: str
    title: str
    severity: Severity
    description: str
    remediation: str
    references: tuple[str, ...]
    affected: tuple[Affected, ...]


class ScanSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tool: str
    target: str
    domain: str
    status: str
    config: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    exit_code: int | None
    partial: bool
    error: str
    scanner_version: str
    schedule_id: str


class TargetChanges(msgspec.Struct, frozen=True, kw_only=True):
    """What changed on one target for one tool: against the previous scan, or since `since`."""

    target: str
    tool: str
    scan_id: str
    new: int
    unchanged: int
    reopened: int
    fixed: int


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    info: int = 0


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "scans", "domain", "target" or "schedule"
    scan_ids: tuple[str, ...] = ()
    domain: str = ""
    target: str = ""
    schedule_id: str = ""


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    schema: str
    report_id: str
    generated_at: datetime
    jetscan_version: str
    subject: Subject
    options: ReportOptions
    scans: tuple[ScanSummary, ...]
    counts: Counts
    changes: tuple[TargetChanges, ...]
    excluded_triaged: int
    rules: tuple[Rule, ...]


class Frozen(msgspec.Struct, frozen=True):
    """A snapshot with the bytes it was stored as and their sha256: what renderers take."""

    snapshot: Snapshot
    sha256: str


_snapshot_decoder = msgspec.json.Decoder(Snapshot)
_snapshot_encoder = msgspec.json.Encoder(order="deterministic")


def freeze(snapshot: Snapshot) -> tuple[bytes, Frozen]:
    data = _snapshot_encoder.encode(snapshot)
    return data, Frozen(snapshot, hashlib.sha256(data).hexdigest())


def thaw(data: bytes) -> Frozen:
    """A stored snapshot, with the sha256 of exactly these bytes."""
    return Frozen(_snapshot_decoder.decode(data), hashlib.sha256(data).hexdigest())
