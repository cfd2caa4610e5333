"""Proto messages ↔ bus Structs: the only place the two shapes meet."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts import scans, schedules
from contracts.findings import Severity
from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.output import OutputLine
from contracts.tracking import Change, FindingState, Triage

_STATUS_TO_PB = {s: v1.ScanStatus[s.name] for s in scans.ScanStatus}
_STATUS_FROM_PB = {v: k for k, v in _STATUS_TO_PB.items()}


def plain(value: Any) -> Any:
    """JSON-like data from a protobuf Struct, with integral numbers back as ints.

    Struct holds every number as a double; `{"timing": 3}` must not reach a config
    validator as 3.0.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def struct_to_dict(s: Struct | None) -> dict[str, Any]:
    return plain(s.to_dict()) if s is not None else {}


def dict_to_struct(d: dict[str, Any]) -> Struct:
    return Struct.from_dict(d)


def status_to_pb(status: scans.ScanStatus) -> v1.ScanStatus:
    return _STATUS_TO_PB[status]


def status_from_pb(status: v1.ScanStatus) -> scans.ScanStatus | None:
    return _STATUS_FROM_PB.get(status)


def scan_to_pb(view: scans.ScanView) -> v1.Scan:
    c = view.finding_counts
    return v1.Scan(
        id=view.id,
        target=view.target,
        domain=view.domain,
        tool=view.tool,
        config=dict_to_struct(view.config),
        status=status_to_pb(view.status),
        exit_code=view.exit_code,
        error=view.error,
        created_at=view.created_at,
        started_at=view.started_at,
        finished_at=view.finished_at,
        schedule_id=view.schedule_id,
        requested_by=view.requested_by,
        finding_counts=v1.FindingCounts(
            info=c.info, low=c.low, medium=c.medium, high=c.high, critical=c.critical
        ),
        deadline_seconds=view.deadline_seconds,
        change_counts=v1.ChangeCounts(
            new=view.change_counts.new,
            unchanged=view.change_counts.unchanged,
            reopened=view.change_counts.reopened,
            fixed=view.change_counts.fixed,
        ),
        trigger=view.trigger,
        queue_position=view.queue_position,
        attempts=view.attempts,
    )


_SEVERITY_TO_PB = {s: v1.Severity[s.name] for s in Severity}
_SEVERITY_FROM_PB = {v: k for k, v in _SEVERITY_TO_PB.items()}


def severity_from_pb(value: v1.Severity) -> Severity | None:
    if value == v1.Severity.UNSPECIFIED:
        return Severity.INFO
    return _SEVERITY_FROM_PB.get(value)


def finding_to_pb(stored: scans.StoredFinding) -> v1.Finding:
    f = stored.finding
    override = stored.severity_override
    return v1.Finding(
        id=stored.id,
        scan_id=stored.scan_id,
        tool=f.tool,
        severity=_SEVERITY_TO_PB[stored.severity],
        title=f.title,
        description=f.description,
        host=f.host,
        port=f.port or 0,
        protocol=f.protocol,
        url=f.url,
        evidence=dict_to_struct(plain_json(f.evidence)),
        references=list(f.references),
        fingerprint=f.fingerprint,
        first_seen=stored.first_seen,
        last_seen=stored.last_seen,
        state=_STATE_TO_PB[stored.state],
        triage=TRIAGE_TO_PB[stored.triage],
        target=stored.target,
        domain=stored.domain,
        fixed_at=stored.fixed_at,
        reopened=stored.reopened,
        triage_reason=stored.triage_reason,
        triage_until=stored.triage_until,
        triaged_by=stored.triaged_by,
        triaged_at=stored.triaged_at,
        severity_override=_SEVERITY_TO_PB[override] if override else v1.Severity.UNSPECIFIED,
        reported_severity=_SEVERITY_TO_PB[f.severity],
        change=CHANGE_TO_PB[stored.change] if stored.change else v1.Change.UNSPECIFIED,
        history=[
            v1.TriageEvent(
                triage=TRIAGE_TO_PB[h.triage],
                reason=h.reason,
                until=h.until,
                severity_override=(
                    _SEVERITY_TO_PB[h.severity_override]
                    if h.severity_override
                    else v1.Severity.UNSPECIFIED
                ),
                by=h.by,
                at=h.at,
            )
            for h in stored.history
        ],
        occurrences=[
            v1.Occurrence(
                scan_id=o.scan_id,
                change=CHANGE_TO_PB[o.change],
                at=o.at,
                status=_STATUS_TO_PB.get(scans.ScanStatus(o.status), v1.ScanStatus.UNSPECIFIED)
                if o.status
                else v1.ScanStatus.UNSPECIFIED,
            )
            for o in stored.occurrences
        ],
    )


_STATE_TO_PB = {s: v1.FindingState[s.name] for s in FindingState}
STATE_FROM_PB = {v: k for k, v in _STATE_TO_PB.items()}
TRIAGE_TO_PB = {t: v1.Triage[t.name] for t in Triage}
TRIAGE_FROM_PB = {v: k for k, v in TRIAGE_TO_PB.items()}
CHANGE_TO_PB = {c: v1.Change[c.name] for c in Change}
CHANGE_FROM_PB = {v: k for k, v in CHANGE_TO_PB.items()}


def severity_override_from_pb(value: v1.Severity) -> Severity | None:
    """An override: None for unspecified (no override)."""
    return None if value == v1.Severity.UNSPECIFIED else _SEVERITY_FROM_PB.get(value)


def plain_json(value: Any) -> Any:
    """Evidence as JSON-compatible builtins (Structs, tuples and enums flattened)."""
    return msgspec.to_builtins(value)


def line_to_pb(line: OutputLine) -> v1.OutputLine:
    return v1.OutputLine(seq=line.seq, time=line.time, stream=line.stream.value, text=line.text)


def schedule_to_pb(view: schedules.ScheduleView) -> v1.Schedule:
    s = view.spec
    return v1.Schedule(
        id=view.id,
        target=s.target,
        domain=s.domain,
        tool=s.tool,
        config=dict_to_struct(s.config),
        cron=s.cron,
        timezone=s.timezone,
        enabled=not s.paused,
        paused=s.paused,
        pause_note=s.pause_note,
        overlap=s.overlap,
        catchup_window_seconds=s.catchup_window_seconds,
        jitter_seconds=s.jitter_seconds,
        deadline_seconds=s.deadline_seconds,
        next_run_at=view.next_run_at,
        last_run_at=view.last_run_at,
        last_scan_id=view.last_scan_id,
        last_outcome=view.last_outcome,
        created_at=view.created_at,
        updated_at=view.updated_at,
        created_by=view.created_by,
    )


def run_to_pb(run: schedules.RunView) -> v1.ScheduleRun:
    return v1.ScheduleRun(
        schedule_id=run.schedule_id,
        nominal_time=run.nominal_time,
        trigger=run.trigger,
        outcome=run.outcome,
        scan_id=run.scan_id,
        reason=run.reason,
        recorded_at=run.recorded_at,
    )
