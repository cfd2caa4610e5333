"""`/findings` (across scans, the URL is the filter), `/findings/{id}` (evidence, history,
occurrences) and POST `/findings/{id}/triage` (TriageFinding, as the RPC runs it)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from grpclib.const import Status
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from contracts import scans, subjects, tracking
from contracts.findings import Severity
from contracts.gen.jetscan import v1
from contracts.tracking import FindingState, Triage
from edge import findings as finding_rpcs
from edge.portal.context import portal_of
from edge.portal.forms import Refused, action, field_errors, page, perform, refused_page
from edge.portal.sessions import Session
from edge.portal.templates import render
from edge.validate import require_id
from scanners import TOOLS

PAGE_SIZE = 100
FILTERS = ("domain", "target", "tool", "severity", "state", "triage")
SEVERITY_PB = {s.value: v1.Severity[s.name] for s in Severity}
STATE_PB = {s.value: v1.FindingState[s.name] for s in FindingState}
TRIAGE_PB = {t.value: v1.Triage[t.name] for t in Triage}
TRIAGE_FIELDS = ("triage", "severity_override", "reason", "until")
_ENUMS = (("severity", SEVERITY_PB), ("state", STATE_PB), ("triage", TRIAGE_PB))


def list_message(
    params: dict[str, str], token: str
) -> tuple[v1.ListFindingsRequest, dict[str, str]]:
    """The ListFindings request a findings URL asks for, and the errors of its parameters."""
    msg = v1.ListFindingsRequest(
        page_size=PAGE_SIZE,
        page_token=token,
        domain=params["domain"],
        target=params["target"],
        tool=params["tool"],
    )
    errors: dict[str, str] = {}
    for name, table in _ENUMS:
        value = params[name]
        if not value:
            continue
        if value not in table:
            errors[name] = f"unknown value {value!r}; expected one of {', '.join(table)}"
        else:
            setattr(msg, name, table[value])
    return msg, errors


async def _list(request: Request, session: Session) -> Response:
    bus = portal_of(request).bus
    params = {k: request.query_params.get(k, "").strip() for k in FILTERS}
    msg, errors = list_message(params, request.query_params.get("page", ""))

    async def read(m: v1.ListFindingsRequest) -> scans.FindingPage:
        query = finding_rpcs.list_request(m)
        return await bus.query(subjects.query("finding", "list"), query, scans.FindingPage)

    found = scans.FindingPage(findings=[])
    if not errors:
        try:
            found = await perform(request, session, "ListFindings", read, msg)
        except Refused as refused:
            errors = field_errors(refused, FILTERS)
    return render(
        request,
        "findings.html",
        {
            "params": params,
            "rows": found.findings,
            "next_page": found.next_page_token,
            "paged": bool(msg.page_token),
            "errors": errors,
            "states": list(STATE_PB),
            "tools": sorted(TOOLS),
            "triages": list(TRIAGE_PB),
        },
        session=session,
        status_code=400 if errors else 200,
    )


async def _finding(request: Request, session: Session, finding_id: str) -> scans.StoredFinding:
    bus = portal_of(request).bus

    async def read(m: v1.GetFindingRequest) -> scans.StoredFinding:
        query = tracking.GetFinding(id=require_id("id", m.id))
        return await bus.query(subjects.query("finding", "get"), query, scans.StoredFinding)

    return await perform(request, session, "GetFinding", read, v1.GetFindingRequest(id=finding_id))


def current_triage(found: scans.StoredFinding) -> dict[str, str]:
    """The triage form as the finding's triage stands (what saving it unchanged keeps)."""
    until = found.triage_until
    return {
        "triage": found.triage.value,
        "severity_override": found.severity_override.value if found.severity_override else "",
        "reason": found.triage_reason,
        "until": until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if until else "",
    }


def _detail(
    request: Request,
    session: Session,
    found: scans.StoredFinding,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    evidence = msgspec.json.format(msgspec.json.encode(found.finding.evidence), indent=2)
    return render(
        request,
        "finding.html",
        {
            "f": found,
            "evidence": evidence.decode(),
            "form": form or current_triage(found),
            "errors": errors or {},
            "triages": list(TRIAGE_PB),
        },
        session=session,
        status_code=status,
    )


async def _show(request: Request, session: Session) -> Response:
    try:
        found = await _finding(request, session, request.path_params["id"])
    except Refused as refused:
        return refused_page(request, session, refused)
    return _detail(request, session, found)


def _until(text: str) -> datetime | None:
    """A `datetime-local` value (or a bare date), read as UTC."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("a date and time such as 2026-12-31T18:00 (UTC)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def triage_message(finding_id: str, form: dict[str, str]) -> v1.TriageFindingRequest:
    """The TriageFinding request of the triage form; a `Refused` naming a form field."""
    triage = form["triage"] or "none"
    if triage not in TRIAGE_PB:
        raise Refused(Status.INVALID_ARGUMENT, "triage", f"expected one of {', '.join(TRIAGE_PB)}")
    override = form["severity_override"]
    if override and override not in SEVERITY_PB:
        raise Refused(Status.INVALID_ARGUMENT, "severity_override", "not a severity")
    try:
        until = _until(form["until"])
    except ValueError as exc:
        raise Refused(Status.INVALID_ARGUMENT, "until", str(exc)) from None
    return v1.TriageFindingRequest(
        id=finding_id,
        triage=TRIAGE_PB[triage],
        reason=form["reason"],
        until=until,
        severity_override=SEVERITY_PB[override] if override else v1.Severity.UNSPECIFIED,
    )


async def _triage(request: Request, session: Session, data: FormData) -> Response:
    portal = portal_of(request)
    finding_id = request.path_params["id"]
    form = {k: str(data.get(k, "")).strip() for k in TRIAGE_FIELDS}
    try:
        msg = triage_message(finding_id, form)
        await perform(request, session, "TriageFinding", portal.scans.triage_finding, msg)
    except Refused as refused:
        try:
            found = await _finding(request, session, finding_id)
        except Refused as missing:
            return refused_page(request, session, missing)
        errors = field_errors(refused, TRIAGE_FIELDS)
        return _detail(
            request, session, found, form=form, errors=errors, status=refused.http_status
        )
    return RedirectResponse(f"/findings/{finding_id}?triaged=1", 303)


ROUTES: list[BaseRoute] = [
    Route("/findings", page(_list), methods=["GET"]),
    Route("/findings/{id}", page(_show), methods=["GET"]),
    Route("/findings/{id}/triage", action(_triage), methods=["POST"]),
]
