"""Scan commands, lifecycle events and query shapes on the bus."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

from contracts import subjects
from contracts.findings import Finding, Severity
from contracts.tracking import Change, FindingState, Occurrence, Triage, TriageEntry


class ScanStatus(enum.StrEnum):
    QUEUED = "queued"
    LAUNCHING = "launching"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {ScanStatus.SUCCEEDED, ScanStatus.FAILED, ScanStatus.CANCELLED, ScanStatus.TIMED_OUT}
)
_ORDER = {
    ScanStatus.QUEUED: 0,
    ScanStatus.LAUNCHING: 1,
    ScanStatus.RUNNING: 2,
}


def advance(current: ScanStatus | None, incoming: ScanStatus) -> ScanStatus | None:
    """The status after `incoming` arrives, or None when it must be ignored.

    Transitions only move forward: a late or duplicate event never moves a scan back,
    and the first terminal status wins.
    """
    if current is None:
        return incoming
    if current.terminal:
        return None
    if incoming.terminal:
        return incoming
    if _ORDER[incoming] > _ORDER[current]:
        return incoming
    return None


# The reason of a scan whose job vanished: killed, or silent past the liveness bound.
LOST = "lost"
# The reason of a `queued` event that puts a scan back in the queue for another attempt.
RETRY = "retry"


class StartScan(msgspec.Struct, frozen=True, kw_only=True, tag="scan.start"):
    """`cmd.scan.<id>.start`: run `tool` against `target` once."""

    scan_id: str
    target: str
    domain: str
    tool: str
    config: dict[str, Any]
    deadline_seconds: int
    requested_by: str
    requested_at: datetime
    request_id: str = ""
    schedule_id: str = ""
    # `api`, `portal` (the portal's form), `schedule` or `manual` (a schedule's run-now):
    # contracts.schedules.TRIGGERS.
    trigger: str = "api"


class CancelScan(msgspec.Struct, frozen=True, kw_only=True, tag="scan.cancel"):
    """`cmd.scan.<id>.cancel`: stop the scan's job if it is still running."""

    scan_id: str
    requested_by: str
    requested_at: datetime


ScanCommand = StartScan | CancelScan


class ScanEvent(msgspec.Struct, frozen=True, kw_only=True):
    """`evt.scan.<id>.<status>`: one lifecycle step, with the exit code once known.

    `attempt` is the job's attempt the step belongs to (1, or more after a retry). A
    `queued` event with an attempt above 1 puts a scan whose job was lost back in the queue
    (`RETRY`).
    """

    scan_id: str
    status: ScanStatus
    at: datetime
    exit_code: int | None = None
    reason: str = ""
    attempt: int = 1


def event_id(scan_id: str, status: ScanStatus, attempt: int = 1) -> str:
    """The `Nats-Msg-Id` of a lifecycle event: one per scan and status, and per attempt for
    the steps a retry repeats (queued, launching, running); a scan ends once."""
    key = status.value if attempt <= 1 or status.terminal else f"{status.value}.{attempt}"
    return subjects.msg_id("scan", scan_id, key)


class FindingCounts(msgspec.Struct, frozen=True, kw_only=True):
    info: int = 0
    low: int = 0
    medium: int = 0
    high: int = 0
    critical: int = 0


class ChangeCounts(msgspec.Struct, frozen=True, kw_only=True):
    """What a scan changed about its tool's findings on its target (false positives left out)."""

    new: int = 0
    unchanged: int = 0
    reopened: int = 0
    fixed: int = 0


class ScanView(msgspec.Struct, frozen=True, kw_only=True):
    """A scan as queries return it: the projection of its commands and events."""

    id: str
    target: str
    domain: str
    tool: str
    config: dict[str, Any]
    status: ScanStatus
    created_at: datetime
    deadline_seconds: int
    requested_by: str = ""
    schedule_id: str = ""
    trigger: str = "api"
    exit_code: int | None = None
    error: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    finding_counts: FindingCounts = FindingCounts()
    change_counts: ChangeCounts = ChangeCounts()
    # Waiting scans ahead of this one plus one, while QUEUED; 0 once launched.
    queue_position: int = 0
    # How many times the scan's job was launched (a retry after a lost job adds one).
    attempts: int = 0


def queued(cmd: StartScan) -> ScanView:
    """A scan as its start command describes it, before anything else happened to it."""
    return ScanView(
        id=cmd.scan_id,
        target=cmd.target,
        domain=cmd.domain,
        tool=cmd.tool,
        config=cmd.config,
        status=ScanStatus.QUEUED,
        created_at=cmd.requested_at,
        deadline_seconds=cmd.deadline_seconds,
        requested_by=cmd.requested_by,
        schedule_id=cmd.schedule_id,
        trigger=cmd.trigger,
    )


class GetScan(msgspec.Struct, frozen=True, kw_only=True):
    """`query.scan.get`."""

    id: str


class ListScans(msgspec.Struct, frozen=True, kw_only=True):
    """`query.scan.list`: newest first; `page_token` is opaque to clients. `since` and
    `until` bound `created_at` (`since <= created_at < until`)."""

    domain: str = ""
    tool: str = ""
    status: ScanStatus | None = None
    schedule_id: str = ""
    page_size: int = 50
    page_token: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None


class ScanPage(msgspec.Struct, frozen=True, kw_only=True):
    scans: list[ScanView]
    next_page_token: str = ""


class ListFindings(msgspec.Struct, frozen=True, kw_only=True):
    """`query.finding.list`: findings most severe first, each filter narrowing the list.

    `scan_id`: the findings that scan saw. `changed_in_scan` (with `change` to pick one kind):
    what that scan changed, fixed findings included. False positives are left out unless
    `include_false_positives` or `triage` asks for them. Every page is bounded by
    `page_size`, so no filter is required.
    """

    scan_id: str = ""
    min_severity: Severity = Severity.INFO
    page_size: int = 100
    page_token: str = ""
    target: str = ""
    domain: str = ""
    tool: str = ""
    state: FindingState | None = None
    triage: Triage | None = None
    changed_in_scan: str = ""
    change: Change | None = None
    include_false_positives: bool = False
    # Exactly this severity (the one that counts); `min_severity` is a floor.
    severity: Severity | None = None


class StoredFinding(msgspec.Struct, frozen=True, kw_only=True):
    """A finding as queries return it. `scan_id` is the scan it was listed for, else the
    last scan that saw it; `change` what that scan did to it (when listed for a scan).
    `history` and `occurrences` are filled by `query.finding.get` only."""

    id: str
    scan_id: str
    finding: Finding
    first_seen: datetime
    last_seen: datetime
    target: str = ""
    domain: str = ""
    state: FindingState = FindingState.OPEN
    fixed_at: datetime | None = None
    reopened: int = 0
    triage: Triage = Triage.NONE
    triage_reason: str = ""
    triage_until: datetime | None = None
    triaged_by: str = ""
    triaged_at: datetime | None = None
    severity_override: Severity | None = None
    change: Change | None = None
    history: list[TriageEntry] = msgspec.field(default_factory=list)
    occurrences: list[Occurrence] = msgspec.field(default_factory=list)

    @property
    def severity(self) -> Severity:
        """The severity that counts: the override when triage set one."""
        return self.severity_override or self.finding.severity


class FindingPage(msgspec.Struct, frozen=True, kw_only=True):
    findings: list[StoredFinding]
    next_page_token: str = ""
