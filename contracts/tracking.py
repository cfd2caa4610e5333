"""Findings over time: their state, what a scan changed, and triage (commands and views)."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from contracts.findings import Severity


class FindingState(enum.StrEnum):
    OPEN = "open"
    FIXED = "fixed"


class Change(enum.StrEnum):
    """What one scan did to one finding of its tool and target."""

    NEW = "new"
    UNCHANGED = "unchanged"
    REOPENED = "reopened"
    FIXED = "fixed"


class Triage(enum.StrEnum):
    NONE = "none"
    FALSE_POSITIVE = "false_positive"
    ACCEPTED_RISK = "accepted_risk"


class TriageError(ValueError):
    """A triage request that cannot be applied: `field` and `reason` say why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


MAX_REASON = 2000


class TriageFinding(msgspec.Struct, frozen=True, kw_only=True, tag="finding.triage"):
    """`cmd.finding.<id>.triage`: the finding's whole triage from now on.

    `triage` none with no override is "reopen": the finding counts again as it is.
    `command_id` is unique per request, so a redelivered command is recorded once.
    """

    command_id: str
    finding_id: str
    triage: Triage
    requested_by: str
    requested_at: datetime
    reason: str = ""
    until: datetime | None = None
    severity_override: Severity | None = None


def check_triage(
    triage: Triage,
    reason: str,
    until: datetime | None,
    severity_override: Severity | None,
    now: datetime,
) -> None:
    """Raise TriageError unless the request is complete and consistent."""
    if len(reason) > MAX_REASON:
        raise TriageError("reason", f"at most {MAX_REASON} characters")
    if triage is Triage.ACCEPTED_RISK and not reason.strip():
        raise TriageError("reason", "required to accept a risk")
    if severity_override is not None and not reason.strip():
        raise TriageError("reason", "required to override the severity")
    if until is not None:
        if triage is not Triage.ACCEPTED_RISK:
            raise TriageError("until", "only an accepted risk expires")
        if until <= now:
            raise TriageError("until", "must be in the future")


class TriageEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One triage decision as kept in a finding's history."""

    triage: Triage
    by: str
    at: datetime
    reason: str = ""
    until: datetime | None = None
    severity_override: Severity | None = None
    command_id: str = ""


class Occurrence(msgspec.Struct, frozen=True, kw_only=True):
    """One scan that decided something about a finding: saw it (new, unchanged, reopened)
    or, covering it without seeing it, fixed it."""

    scan_id: str
    change: Change
    at: datetime | None = None
    status: str = ""


class GetFinding(msgspec.Struct, frozen=True, kw_only=True):
    """`query.finding.get`."""

    id: str
