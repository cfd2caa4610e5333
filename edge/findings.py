"""The findings RPCs of ScanService: reads through the queries service, triage as a command.

Triage is a command on COMMANDS (`cmd.finding.<id>.triage`) that ingest applies, since ingest
owns the findings tables; TriageFinding waits until the finding's history shows it, so the
Finding it returns already carries the decision.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar

from grpclib import GRPCError
from grpclib.const import Status
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from contracts import scans, subjects, tracking, wire
from contracts.findings import Severity
from contracts.gen.jetscan import v1
from edge import auth, convert, validate
from edge.bus import Bus
from edge.validate import optional_id, require_id

K = TypeVar("K")
V = TypeVar("V")

# How long TriageFinding waits for ingest to apply its command.
APPLY_WAIT = 10.0
_POLL = 0.05


def _enum(field: str, value: K, table: Mapping[K, V]) -> V | None:
    if value == 0:
        return None
    if value not in table:
        raise GRPCError(Status.INVALID_ARGUMENT, f"{field}: unknown value")
    return table[value]


def list_request(message: v1.ListFindingsRequest) -> scans.ListFindings:
    """The query for a ListFindingsRequest, or INVALID_ARGUMENT naming the field."""
    if message.page_size < 0:
        raise GRPCError(Status.INVALID_ARGUMENT, "page_size: must not be negative")
    minimum = convert.severity_from_pb(message.min_severity)
    if minimum is None:
        raise GRPCError(Status.INVALID_ARGUMENT, "min_severity: unknown value")
    state = _enum("state", message.state, convert.STATE_FROM_PB)
    triage = _enum("triage", message.triage, convert.TRIAGE_FROM_PB)
    change = _enum("change", message.change, convert.CHANGE_FROM_PB)
    exact = None
    if message.severity != v1.Severity.UNSPECIFIED:
        exact = convert.severity_from_pb(message.severity)
        if exact is None:
            raise GRPCError(Status.INVALID_ARGUMENT, "severity: unknown value")
    domain, tool = validate.list_filters(message.domain, message.tool)
    if change is not None and not message.changed_in_scan:
        raise GRPCError(Status.INVALID_ARGUMENT, "change: needs changed_in_scan")
    return scans.ListFindings(
        scan_id=optional_id("scan_id", message.scan_id),
        min_severity=minimum,
        page_size=message.page_size,
        page_token=message.page_token,
        target=validate.target_filter("target", message.target),
        domain=domain,
        tool=tool,
        state=state,
        triage=triage,
        changed_in_scan=optional_id("changed_in_scan", message.changed_in_scan),
        change=change,
        include_false_positives=message.include_false_positives,
        severity=exact,
    )


async def list_findings(bus: Bus, message: v1.ListFindingsRequest) -> v1.ListFindingsResponse:
    page = await bus.query(
        subjects.query("finding", "list"), list_request(message), scans.FindingPage
    )
    return v1.ListFindingsResponse(
        findings=[convert.finding_to_pb(f) for f in page.findings],
        next_page_token=page.next_page_token,
    )


async def _get(bus: Bus, finding_id: str) -> scans.StoredFinding:
    return await bus.query(
        subjects.query("finding", "get"), tracking.GetFinding(id=finding_id), scans.StoredFinding
    )


async def get_finding(bus: Bus, message: v1.GetFindingRequest) -> v1.Finding:
    return convert.finding_to_pb(await _get(bus, require_id("id", message.id)))


def triage_command(
    message: v1.TriageFindingRequest, by: str, now: datetime
) -> tracking.TriageFinding:
    """The command for a TriageFindingRequest, or INVALID_ARGUMENT naming the field."""
    finding_id = require_id("id", message.id)
    triage = _enum("triage", message.triage, convert.TRIAGE_FROM_PB) or tracking.Triage.NONE
    override: Severity | None = None
    if message.severity_override != v1.Severity.UNSPECIFIED:
        override = convert.severity_override_from_pb(message.severity_override)
        if override is None:
            raise GRPCError(Status.INVALID_ARGUMENT, "severity_override: unknown value")
    until = message.until
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    try:
        tracking.check_triage(triage, message.reason, until, override, now)
    except tracking.TriageError as exc:
        raise GRPCError(Status.INVALID_ARGUMENT, str(exc)) from None
    return tracking.TriageFinding(
        command_id=uuid.uuid4().hex,
        finding_id=finding_id,
        triage=triage,
        requested_by=by,
        requested_at=now,
        reason=message.reason.strip(),
        until=until,
        severity_override=override,
    )


async def triage_finding(bus: Bus, message: v1.TriageFindingRequest) -> v1.Finding:
    cmd = triage_command(message, auth.current.get().name, datetime.now(UTC))
    await _get(bus, cmd.finding_id)  # NOT_FOUND before anything is published
    try:
        await bus.js.publish(
            subjects.finding_triage(cmd.finding_id),
            wire.encode(cmd),
            headers={"Nats-Msg-Id": subjects.msg_id("finding", cmd.finding_id, cmd.command_id)},
            timeout=5,
        )
    except (NatsTimeoutError, NoRespondersError):
        raise GRPCError(Status.UNAVAILABLE, "JetStream did not accept the command") from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + APPLY_WAIT
    while True:
        found = await _get(bus, cmd.finding_id)
        if any(h.command_id == cmd.command_id for h in found.history):
            return convert.finding_to_pb(found)
        if loop.time() > deadline:
            raise GRPCError(
                Status.UNAVAILABLE,
                f"triage accepted but not applied within {APPLY_WAIT:g}s; GetFinding shows it"
                " once ingest has applied it",
            )
        await asyncio.sleep(_POLL)
