"""`/reports` (list, and the form that generates a report of a scan, a domain, a target or a
schedule in any of the formats) and `/reports/{id}` (status, download, verify). Downloads are
the existing `GET /reports/{id}/{file}` (`edge/reportfiles.py`)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from grpclib.const import Status
from nats.js.errors import NotFoundError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from contracts import reports, subjects
from contracts.findings import Severity
from contracts.gen.jetscan import v1
from edge.portal.context import portal_of
from edge.portal.forms import Refused, action, page, perform, refused_page
from edge.portal.sessions import Session
from edge.portal.templates import render
from edge.reportfiles import ARTIFACTS
from edge.reporting import FORMAT_FROM_PB
from edge.validate import require_id

PAGE_SIZE = 50
FORMATS = {f.value: pb for pb, f in FORMAT_FROM_PB.items()}
FORMAT_LABELS = {
    "pdf": "PDF",
    "json": "JSON",
    "sarif": "SARIF",
    "defectdojo": "DefectDojo",
    "csv": "CSV",
}
SUBJECTS = ("scan", "domain", "target", "schedule")
SEVERITY_PB = {s.value: v1.Severity[s.name] for s in Severity}
# A refusal of GenerateReport names these; the form has one subject field for them all.
_SUBJECT_FIELDS = {"scan_ids", "domain", "target", "schedule_id", "subject", "since"}


def blank(params: dict[str, str]) -> dict[str, Any]:
    """The generate form, prefilled from a link such as `/reports?scan_id=…`."""
    kind, value = "scan", ""
    for name, k in (("scan_id", "scan"), ("schedule_id", "schedule"), ("domain", "domain")):
        if params.get(name):
            kind, value = k, params[name]
            break
    return {
        "subject_kind": kind,
        "subject": value,
        "formats": ["pdf", "json"],
        "min_severity": "",
        "include_triaged": False,
    }


async def _page(
    request: Request,
    session: Session,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    bus = portal_of(request).bus
    params = {k: request.query_params.get(k, "").strip() for k in ("scan_id", "domain", "format")}
    if params["format"] not in ("", *FORMATS):
        params["format"] = ""
    token = request.query_params.get("page", "")

    async def read(m: v1.ListReportsRequest) -> reports.ReportPage:
        q = reports.ListReports(
            domain=m.domain.lower().rstrip("."),
            scan_id=require_id("scan_id", m.scan_id) if m.scan_id else "",
            format=reports.ReportFormat(params["format"]) if params["format"] else None,
            page_size=m.page_size,
            page_token=m.page_token,
        )
        return await bus.query(subjects.query("report", "list"), q, reports.ReportPage)

    msg = v1.ListReportsRequest(
        domain=params["domain"], scan_id=params["scan_id"], page_size=PAGE_SIZE, page_token=token
    )
    try:
        found = await perform(request, session, "ListReports", read, msg)
        # Reports just asked for: read one by one, since the list shows a report only once
        # the reports role has picked it up, and GetReport answers from its command before.
        generated = request.query_params.get("generated", "").split(",")[: len(FORMATS)]
        requested = [await _view(request, session, i) for i in generated if i]
    except Refused as refused:
        return refused_page(request, session, refused)
    return render(
        request,
        "reports.html",
        {
            "rows": found.reports,
            "requested": requested,
            "next_page": found.next_page_token,
            "paged": bool(token),
            "params": params,
            "form": form or blank({**params, **dict(request.query_params)}),
            "errors": errors or {},
            "formats": FORMAT_LABELS,
            "request_id": uuid.uuid4().hex,
        },
        session=session,
        status_code=status,
    )


async def _list(request: Request, session: Session) -> Response:
    return await _page(request, session)


def read_form(data: FormData) -> dict[str, Any]:
    kind = data.get("subject_kind")
    subject = data.get("subject")
    minimum = data.get("min_severity")
    return {
        "subject_kind": kind if isinstance(kind, str) else "",
        "subject": subject.strip() if isinstance(subject, str) else "",
        "formats": [f for f in data.getlist("format") if isinstance(f, str)],
        "min_severity": minimum if isinstance(minimum, str) else "",
        "include_triaged": data.get("include_triaged") == "1",
    }


def generate_message(form: dict[str, Any], fmt: str, request_id: str) -> v1.GenerateReportRequest:
    """The GenerateReport request of the form for one format; a `Refused` naming the field."""
    invalid = Status.INVALID_ARGUMENT
    if form["min_severity"] and form["min_severity"] not in SEVERITY_PB:
        raise Refused(invalid, "min_severity", "not a severity")
    msg = v1.GenerateReportRequest(
        format=FORMATS[fmt],
        request_id=request_id,
        min_severity=SEVERITY_PB.get(form["min_severity"], v1.Severity.UNSPECIFIED),
        include_triaged=form["include_triaged"],
    )
    value, kind = form["subject"], form["subject_kind"]
    if not value:
        raise Refused(invalid, "subject", f"the {kind or 'subject'} to report on is required")
    if kind == "scan":
        msg.scan_ids = v1.ScanIds(ids=[s for s in value.replace(",", " ").split() if s])
    elif kind == "domain":
        msg.domain = value
    elif kind == "target":
        msg.target = value
    elif kind == "schedule":
        msg.schedule_id = value
    else:
        raise Refused(invalid, "subject_kind", f"expected one of {', '.join(SUBJECTS)}")
    return msg


async def _generate(request: Request, session: Session, data: FormData) -> Response:
    portal = portal_of(request)
    form = read_form(data)
    rid = data.get("request_id")
    errors: dict[str, str] = {}
    made: list[str] = []
    if not form["formats"] or any(f not in FORMATS for f in form["formats"]):
        errors["format"] = f"choose one or more of {', '.join(FORMAT_LABELS.values())}"
    for fmt in [] if errors else form["formats"]:
        try:
            # One idempotency key per format: a resubmitted form makes no second report.
            key = f"{rid}-{fmt}" if isinstance(rid, str) and rid else ""
            msg = generate_message(form, fmt, key)
            made.append(
                (
                    await perform(
                        request, session, "GenerateReport", portal.reports.generate_report, msg
                    )
                ).id
            )
        except Refused as refused:
            name = refused.field
            if name in _SUBJECT_FIELDS or refused.status is Status.NOT_FOUND:
                name = "subject"
            elif name not in ("min_severity", "format", "subject_kind"):
                name = ""
            errors[name] = refused.reason if name else str(refused)
            break
    if errors:
        status = 400 if not made else 207
        return await _page(request, session, form=form, errors=errors, status=status)
    if len(made) == 1:
        return RedirectResponse(f"/reports/{made[0]}", 303)
    return RedirectResponse("/reports?generated=" + ",".join(made), 303)


async def _view(request: Request, session: Session, report_id: str) -> reports.ReportView:
    bus = portal_of(request).bus

    async def read(m: v1.GetReportRequest) -> reports.ReportView:
        q = reports.GetReport(id=require_id("id", m.id))
        return await bus.query(subjects.query("report", "get"), q, reports.ReportView)

    return await perform(request, session, "GetReport", read, v1.GetReportRequest(id=report_id))


async def verify(request: Request, view: reports.ReportView) -> tuple[bool | None, str]:
    """Whether the stored file's sha256 is the one recorded when it was rendered, and the
    sha256 read now (None and a reason when there is no file to read)."""
    if view.status is not reports.ReportStatus.READY or not view.file:
        return None, f"the report is {view.status.value}"
    try:
        store = await portal_of(request).bus.js.object_store(ARTIFACTS)
        found = await store.get(reports.object_name(view.id, view.file))
    except NotFoundError:
        return False, "the file is gone from the object store"
    actual = hashlib.sha256(found.data or b"").hexdigest()
    return actual == view.sha256, actual


async def _show(request: Request, session: Session) -> Response:
    try:
        view = await _view(request, session, request.path_params["id"])
    except Refused as refused:
        return refused_page(request, session, refused)
    checked: tuple[bool | None, str] | None = None
    if request.query_params.get("verify"):
        checked = await verify(request, view)
    return render(
        request,
        "report.html",
        {"r": view, "checked": checked, "label": FORMAT_LABELS[view.format.value]},
        session=session,
    )


ROUTES: list[BaseRoute] = [
    Route("/reports", page(_list), methods=["GET"]),
    Route("/reports", action(_generate), methods=["POST"]),
    Route("/reports/{id}", page(_show), methods=["GET"]),
]
