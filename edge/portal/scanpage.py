"""`/scans/{id}`: one scan, its console and its findings; `/scans/{id}/console.txt` the raw
console; POST `/scans/{id}/cancel` and `/scans/{id}/rerun`.

The console's first `CONSOLE_SHOWN` lines are in the page (so it works without JavaScript);
`console.js` continues after the last of them over the WebSocket, live.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

from grpclib import GRPCError
from grpclib.const import Status
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from contracts import subjects
from contracts.findings import Severity
from contracts.gen.jetscan import v1
from contracts.output import ListOutput, OutputLine, OutputPage
from contracts.scans import FindingPage, GetScan, ListFindings, ScanView
from contracts.tracking import Change, FindingState
from edge.portal.context import portal_of
from edge.portal.forms import Refused, action, page, perform, refused_page
from edge.portal.sessions import Session
from edge.portal.startscan import start
from edge.portal.templates import render, visible

# The rest arrive over the WebSocket: more in the page only makes it slower to first paint
# (2,000 lines were 274 KB and a p95 over 200 ms in `bench ui`).
CONSOLE_SHOWN = 500
OUTPUT_PAGE = 5000
FINDINGS_PAGE = 100
FINDING_FILTERS = ("severity", "state", "change")


def _scan_id(request: Request) -> str:
    try:
        return subjects.token(request.path_params["id"])
    except ValueError:
        raise Refused(Status.INVALID_ARGUMENT, "id", "must be 1-128 of A-Z a-z 0-9 _ -") from None


async def _view(request: Request, scan_id: str) -> ScanView:
    try:
        return await portal_of(request).bus.query(
            subjects.query("scan", "get"), GetScan(id=scan_id), ScanView
        )
    except GRPCError as exc:
        raise Refused.of(exc) from None


async def _lines(request: Request, scan_id: str, after: int, limit: int) -> list[OutputLine]:
    page_ = await portal_of(request).bus.query(
        subjects.query("output", "list"),
        ListOutput(scan_id=scan_id, after_seq=after, limit=limit),
        OutputPage,
    )
    return page_.lines


def finding_query(scan_id: str, params: dict[str, str], token: str) -> ListFindings:
    """The findings of the scan that the page's `severity`, `state` and `change` ask for."""
    try:
        severity = Severity(params["severity"]) if params["severity"] else None
    except ValueError:
        raise Refused(Status.INVALID_ARGUMENT, "severity", "unknown severity") from None
    try:
        state = FindingState(params["state"]) if params["state"] else None
    except ValueError:
        raise Refused(Status.INVALID_ARGUMENT, "state", "unknown state") from None
    try:
        change = Change(params["change"]) if params["change"] else None
    except ValueError:
        raise Refused(Status.INVALID_ARGUMENT, "change", "unknown change") from None
    return ListFindings(
        # A change is of this scan: fixed findings are listed only then.
        scan_id="" if change else scan_id,
        changed_in_scan=scan_id if change else "",
        change=change,
        severity=severity,
        state=state,
        page_size=FINDINGS_PAGE,
        page_token=token,
    )


async def _scan(request: Request, session: Session) -> Response:
    try:
        scan_id = _scan_id(request)
        scan = await _view(request, scan_id)
    except Refused as refused:
        return refused_page(request, session, refused)
    params = {name: request.query_params.get(name, "") for name in FINDING_FILTERS}
    token = request.query_params.get("fpage", "")
    finding_error = ""
    findings = FindingPage(findings=[])
    try:
        query = finding_query(scan_id, params, token)
        findings, lines = await asyncio.gather(
            portal_of(request).bus.query(subjects.query("finding", "list"), query, FindingPage),
            _lines(request, scan_id, 0, CONSOLE_SHOWN),
        )
    except Refused as refused:
        finding_error = str(refused)
        lines = await _lines(request, scan_id, 0, CONSOLE_SHOWN)
    except GRPCError as exc:
        finding_error = str(Refused.of(exc))
        lines = []
    return render(
        request,
        "scan.html",
        {
            "scan": scan,
            "config": json.dumps(scan.config, indent=2, sort_keys=True, ensure_ascii=False),
            "lines": lines,
            "more_lines": len(lines) == CONSOLE_SHOWN,
            "last_seq": lines[-1].seq if lines else 0,
            "findings": findings.findings,
            "next_findings": findings.next_page_token,
            "finding_params": params,
            "finding_error": finding_error,
            "severities_": [s.value for s in reversed(Severity)],
            "states": [s.value for s in FindingState],
            "changes": [c.value for c in Change],
            "rerun_id": uuid.uuid4().hex,
        },
        session=session,
    )


async def _console_text(request: Request, session: Session) -> Response:
    """Every stored line, as text: control characters shown, never obeyed by a terminal."""
    try:
        scan_id = _scan_id(request)
        await _view(request, scan_id)
    except Refused as refused:
        return refused_page(request, session, refused)

    async def body() -> AsyncIterator[bytes]:
        after = 0
        while True:
            lines = await _lines(request, scan_id, after, OUTPUT_PAGE)
            yield "".join(f"{visible(line.text)}\n" for line in lines).encode()
            if len(lines) < OUTPUT_PAGE:
                return
            after = lines[-1].seq

    return StreamingResponse(
        body(),
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="scan-{scan_id}-console.txt"',
            "Cache-Control": "no-store",
        },
    )


async def _cancel(request: Request, session: Session, form: FormData) -> Response:
    try:
        scan_id = _scan_id(request)
        cancel = portal_of(request).scans.cancel_scan
        await perform(request, session, "CancelScan", cancel, v1.CancelScanRequest(id=scan_id))
    except Refused as refused:
        return refused_page(request, session, refused)
    return RedirectResponse(f"/scans/{scan_id}", 303)


async def _rerun(request: Request, session: Session, form: FormData) -> Response:
    """The same tool, target, config and deadline, as a new scan."""
    request_id = form.get("request_id")
    try:
        scan = await _view(request, _scan_id(request))
        again = await start(
            request,
            session,
            scan.tool,
            scan.target,
            dict(scan.config),
            scan.deadline_seconds,
            request_id if isinstance(request_id, str) else "",
        )
    except Refused as refused:
        return refused_page(request, session, refused)
    return RedirectResponse(f"/scans/{again.id}", 303)


endpoint = page(_scan)
console_endpoint = page(_console_text)
cancel_endpoint = action(_cancel)
rerun_endpoint = action(_rerun)
