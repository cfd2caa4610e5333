"""`/schedules`, `/schedules/new`, `/schedules/{id}`: list, create, edit, pause with a note,
resume, run now, run history, through the ScheduleService's own methods (its validation, its
commands). `/schedules/preview` answers the form's cron preview as JSON."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from grpclib.const import Status
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from contracts import cron, schedules, subjects
from contracts.auth import Role
from contracts.gen.google.protobuf import FieldMask
from contracts.gen.jetscan import v1
from edge import convert
from edge.portal import options, scheduleform
from edge.portal.context import portal_of
from edge.portal.forms import Refused, action, field_errors, page, perform, refused_page
from edge.portal.scheduleform import EDITABLE, FireTime
from edge.portal.sessions import Session
from edge.portal.templates import render
from edge.schedules import WRITABLE
from edge.validate import require_id
from scanners import TOOLS

PAGE_SIZE = 50
RUNS_PAGE = 20
SETTLE_SECONDS = 5.0
# What a button's redirect tells the schedule page it did.
_DONE = {"PauseSchedule": "paused", "ResumeSchedule": "resumed"}
M = TypeVar("M")


def _zone(view: schedules.ScheduleView) -> str:
    return view.spec.timezone or "UTC"


def _when(at: datetime | None, zone: str) -> FireTime | None:
    return None if at is None else scheduleform.fire_time(at, zone)


async def _list(request: Request, session: Session) -> Response:
    bus = portal_of(request).bus
    token = request.query_params.get("page", "")

    async def read(m: v1.ListSchedulesRequest) -> schedules.SchedulePage:
        q = schedules.ListSchedules(page_size=m.page_size, page_token=m.page_token)
        return await bus.query(subjects.query("schedule", "list"), q, schedules.SchedulePage)

    try:
        found = await perform(
            request,
            session,
            "ListSchedules",
            read,
            v1.ListSchedulesRequest(page_size=PAGE_SIZE, page_token=token),
        )
    except Refused as refused:
        return refused_page(request, session, refused)
    rows = [
        {"s": s, "next": _when(s.next_run_at, _zone(s)), "last": _when(s.last_run_at, _zone(s))}
        for s in found.schedules
    ]
    return render(
        request,
        "schedules.html",
        {"rows": rows, "next_page": found.next_page_token, "paged": bool(token)},
        session=session,
    )


def _form_page(
    request: Request,
    session: Session,
    form: dict[str, Any],
    *,
    view: schedules.ScheduleView | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    runs: schedules.RunPage | None = None,
) -> Response:
    """The new-schedule form, or a schedule's page with its edit form; both with the next
    fire times of the form's expression (the no-JS preview: shown after a submit)."""
    errors = dict(errors or {})
    times: list[FireTime] = []
    if not ({"cron", "timezone"} & errors.keys()):
        try:
            times = scheduleform.preview(form["cron"], form["timezone"], datetime.now(UTC))
        except cron.CronError as exc:
            errors.setdefault(exc.field, exc.reason)
    context: dict[str, Any] = {
        "form": form,
        "errors": errors,
        "times": times,
        "tools": sorted(TOOLS),
        "tool_options": {name: options.options(name) for name in sorted(TOOLS)},
        "overlaps": schedules.OVERLAP_POLICIES,
        "view": view,
        "request_id": uuid.uuid4().hex,
        "runs": runs,
    }
    if view is not None:
        context["next"] = _when(view.next_run_at, _zone(view))
        context["last"] = _when(view.last_run_at, _zone(view))
        context["runs_page"] = request.query_params.get("runs", "")
        context["config_json"] = json.dumps(view.spec.config, indent=2, sort_keys=True)
    template = "schedule.html" if view is not None else "schedule_new.html"
    return render(request, template, context, session=session, status_code=status)


async def _new(request: Request, session: Session) -> Response:
    return _form_page(request, session, scheduleform.blank())


async def _create(request: Request, session: Session, data: FormData) -> Response:
    portal = portal_of(request)
    form = scheduleform.read_form(data)
    if data.get("preview"):
        return _form_page(request, session, form)
    rid = data.get("request_id")
    try:
        msg = v1.CreateScheduleRequest(
            schedule=scheduleform.to_schedule(form),
            request_id=rid if isinstance(rid, str) else "",
        )
        created = await perform(
            request, session, "CreateSchedule", portal.schedules.create_schedule, msg
        )
    except Refused as refused:
        named = scheduleform.form_field(refused)
        errors = field_errors(named, scheduleform.known_fields(form["tool"]))
        return _form_page(request, session, form, errors=errors, status=named.http_status)
    await _settled(request, session, created.id, created)
    return RedirectResponse(f"/schedules/{created.id}?saved=1", 303)


async def _view(request: Request, session: Session, schedule_id: str) -> schedules.ScheduleView:
    bus = portal_of(request).bus

    async def read(m: v1.GetScheduleRequest) -> schedules.ScheduleView:
        q = schedules.GetSchedule(id=require_id("id", m.id))
        return await bus.query(subjects.query("schedule", "get"), q, schedules.ScheduleView)

    return await perform(
        request, session, "GetSchedule", read, v1.GetScheduleRequest(id=schedule_id)
    )


async def _runs(request: Request, session: Session, schedule_id: str) -> schedules.RunPage:
    bus = portal_of(request).bus

    async def read(m: v1.ListScheduleRunsRequest) -> schedules.RunPage:
        q = schedules.ListRuns(
            schedule_id=m.schedule_id, page_size=m.page_size, page_token=m.page_token
        )
        return await bus.query(subjects.query("schedule", "runs"), q, schedules.RunPage)

    msg = v1.ListScheduleRunsRequest(
        schedule_id=schedule_id,
        page_size=RUNS_PAGE,
        page_token=request.query_params.get("runs", ""),
    )
    return await perform(request, session, "ListScheduleRuns", read, msg)


async def _settled(
    request: Request, session: Session, schedule_id: str, want: v1.Schedule | None
) -> None:
    """Wait (a few seconds at most) until the queries service shows what a command made of
    the schedule (`want`; None: deleted), so the page redirected to shows it too: commands
    are applied by the scheduler, after the RPC has answered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while loop.time() < deadline:
        try:
            view = convert.schedule_to_pb(await _view(request, session, schedule_id))
        except Refused as refused:
            if want is None and refused.status is Status.NOT_FOUND:
                return
            view = None
        if (
            view is not None
            and want is not None
            and all(getattr(view, f) == getattr(want, f) for f in WRITABLE)
        ):
            return
        await asyncio.sleep(0.05)


async def _show(request: Request, session: Session) -> Response:
    try:
        view = await _view(request, session, request.path_params["id"])
        runs = await _runs(request, session, view.id)
    except Refused as refused:
        return refused_page(request, session, refused)
    return _form_page(request, session, scheduleform.fields_of(view), view=view, runs=runs)


async def _update(request: Request, session: Session, data: FormData) -> Response:
    portal = portal_of(request)
    try:
        view = await _view(request, session, request.path_params["id"])
    except Refused as refused:
        return refused_page(request, session, refused)
    form = scheduleform.read_form(data)
    form["pause_note"] = view.spec.pause_note
    if data.get("preview"):
        runs = await _runs(request, session, view.id)
        return _form_page(request, session, form, view=view, runs=runs)
    try:
        schedule = scheduleform.to_schedule(form)
        schedule.id = view.id
        msg = v1.UpdateScheduleRequest(
            schedule=schedule, update_mask=FieldMask(paths=list(EDITABLE))
        )
        done = await perform(
            request, session, "UpdateSchedule", portal.schedules.update_schedule, msg
        )
    except Refused as refused:
        named = scheduleform.form_field(refused)
        runs = await _runs(request, session, view.id)
        return _form_page(
            request,
            session,
            form,
            view=view,
            runs=runs,
            errors=field_errors(named, scheduleform.known_fields(form["tool"])),
            status=named.http_status,
        )
    await _settled(request, session, view.id, done)
    return RedirectResponse(f"/schedules/{view.id}?saved=1", 303)


async def _pause(request: Request, session: Session, data: FormData) -> Response:
    note = data.get("note")
    msg = v1.PauseScheduleRequest(
        id=request.path_params["id"], note=note.strip() if isinstance(note, str) else ""
    )
    service = portal_of(request).schedules
    return await _button(request, session, "PauseSchedule", service.pause_schedule, msg, "note")


async def _resume(request: Request, session: Session, data: FormData) -> Response:
    msg = v1.ResumeScheduleRequest(id=request.path_params["id"])
    service = portal_of(request).schedules
    return await _button(request, session, "ResumeSchedule", service.resume_schedule, msg)


async def _run_now(request: Request, session: Session, data: FormData) -> Response:
    msg = v1.RunScheduleNowRequest(id=request.path_params["id"])
    service = portal_of(request).schedules
    return await _button(request, session, "RunScheduleNow", service.run_schedule_now, msg)


async def _button(
    request: Request,
    session: Session,
    method: str,
    call: Callable[[M], Awaitable[v1.Schedule | v1.Scan]],
    msg: M,
    field: str = "",
) -> Response:
    """One of a schedule page's buttons: its refusal shown next to `field`'s button; else the
    scan it started, or the schedule once the queries service shows what the command did."""
    schedule_id = request.path_params["id"]
    try:
        done = await perform(request, session, method, call, msg)
    except Refused as refused:
        return await _refused_on_page(request, session, schedule_id, refused, field)
    if isinstance(done, v1.Scan):
        return RedirectResponse(f"/scans/{done.id}", 303)
    await _settled(request, session, schedule_id, done)
    return RedirectResponse(f"/schedules/{schedule_id}?{_DONE[method]}=1", 303)


async def _delete(request: Request, session: Session, data: FormData) -> Response:
    portal = portal_of(request)
    msg = v1.DeleteScheduleRequest(id=request.path_params["id"])
    try:
        await perform(request, session, "DeleteSchedule", portal.schedules.delete_schedule, msg)
    except Refused as refused:
        return refused_page(request, session, refused)
    await _settled(request, session, msg.id, None)
    return RedirectResponse("/schedules", 303)


async def _refused_on_page(
    request: Request, session: Session, schedule_id: str, refused: Refused, field: str
) -> Response:
    """The schedule's page with the refusal of one of its buttons next to that button."""
    try:
        view = await _view(request, session, schedule_id)
        runs = await _runs(request, session, view.id)
    except Refused as missing:
        return refused_page(request, session, missing)
    errors = {f"action.{field or 'top'}": refused.reason}
    return _form_page(
        request,
        session,
        scheduleform.fields_of(view),
        view=view,
        runs=runs,
        errors=errors,
        status=refused.http_status,
    )


async def _preview(request: Request, session: Session) -> Response:
    """`{"times": [{"local", "utc"}, ...]}`, or 400 with `{"field", "reason"}`."""
    expr = request.query_params.get("cron", "")
    zone = request.query_params.get("timezone", "")
    try:
        times = scheduleform.preview(expr, zone, datetime.now(UTC))
    except cron.CronError as exc:
        return JSONResponse({"field": exc.field, "reason": exc.reason}, 400)
    return JSONResponse({"times": [{"local": t.local, "utc": t.utc} for t in times]})


ROUTES: list[BaseRoute] = [
    Route("/schedules", page(_list), methods=["GET"]),
    Route("/schedules", action(_create), methods=["POST"]),
    Route("/schedules/new", page(_new, role=Role.OPERATOR), methods=["GET"]),
    Route("/schedules/preview", page(_preview), methods=["GET"]),
    Route("/schedules/{id}", page(_show), methods=["GET"]),
    Route("/schedules/{id}", action(_update), methods=["POST"]),
    Route("/schedules/{id}/pause", action(_pause), methods=["POST"]),
    Route("/schedules/{id}/resume", action(_resume), methods=["POST"]),
    Route("/schedules/{id}/run", action(_run_now), methods=["POST"]),
    Route("/schedules/{id}/delete", action(_delete), methods=["POST"]),
]
