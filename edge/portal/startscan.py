"""`/scans/new` and POST `/scans`: start a scan from a form, refused as StartScan refuses.

The form carries a `request_id` made when it was drawn, so submitting it twice (a double
click, a reload of the POST) names one scan, as a retried StartScan does.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from contracts.auth import Role
from contracts.gen.jetscan import v1
from edge import convert
from edge.portal import options
from edge.portal.context import portal_of
from edge.portal.forms import Refused, action, field_errors, page, perform
from edge.portal.sessions import Session
from edge.portal.templates import render
from scanners import TOOLS

FIELDS = ("target", "tool", "deadline_seconds", "request_id")
DEFAULT_TOOL = "nmap"


def _form(
    request: Request,
    session: Session,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    tool = values.get("tool") if values.get("tool") in TOOLS else DEFAULT_TOOL
    return render(
        request,
        "scan_new.html",
        {
            "values": values,
            "errors": errors or {},
            "tool": tool,
            "tools": {name: (options.options(name), spec) for name, spec in TOOLS.items()},
        },
        session=session,
        status_code=status_code,
    )


async def new_form(request: Request, session: Session) -> Response:
    """The form, blank or filled from the query (`?tool=&target=`, a link from elsewhere)."""
    tool = request.query_params.get("tool", DEFAULT_TOOL)
    values: dict[str, Any] = {
        "target": request.query_params.get("target", ""),
        "tool": tool,
        "deadline_seconds": request.query_params.get("deadline_seconds", ""),
        "request_id": uuid.uuid4().hex,
        **options.form_values(tool, {}),
    }
    return _form(request, session, values)


async def start(
    request: Request,
    session: Session,
    tool: str,
    target: str,
    config: dict[str, Any],
    deadline_seconds: int,
    request_id: str,
) -> v1.Scan:
    """StartScan as the session's principal (validation, rate limit, audit: as the RPC)."""
    message = v1.StartScanRequest(
        tool=tool,
        target=target,
        config=convert.dict_to_struct(config),
        deadline_seconds=deadline_seconds,
        request_id=request_id,
    )
    call = functools.partial(portal_of(request).scans.start_scan, trigger="portal")
    return await perform(request, session, "StartScan", call, message)


async def _submit(request: Request, session: Session, form: FormData) -> Response:
    values: dict[str, Any] = {k: v for k, v in form.items() if k != "csrf"}
    for name in FIELDS:
        values.setdefault(name, "")
    tool = str(values["tool"])
    for opt in options.options(tool):  # checkboxes as submitted: absent is unchecked
        name = options.input_name(tool, opt.name)
        if opt.kind == "multi":
            values[name] = form.getlist(name)
        elif opt.kind == "bool":
            values[name] = name in form
    known = {*FIELDS, *(f"config.{o.name}" for o in options.options(tool))}
    deadline_text = str(values["deadline_seconds"]).strip()
    try:
        if deadline_text and not deadline_text.isdigit():
            raise options.BadOption("deadline_seconds", "must be a whole number of seconds")
        config = options.config_from_form(tool, form, form.getlist)
    except options.BadOption as exc:
        return _form(request, session, values, {exc.field: exc.reason}, 400)
    try:
        scan = await start(
            request,
            session,
            tool,
            str(values["target"]).strip(),
            config,
            int(deadline_text or 0),
            str(values["request_id"]),
        )
    except Refused as refused:
        return _form(request, session, values, field_errors(refused, known), refused.http_status)
    return RedirectResponse(f"/scans/{scan.id}", 303)


new_endpoint = page(new_form, role=Role.OPERATOR)
submit_endpoint = action(_submit)
