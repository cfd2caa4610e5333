"""Guards for portal endpoints, and the one way a form changes anything.

- `page(handler)`: a GET page; no session → 303 to `/login?next=<this URL>`; a role too
  low → 403 page. The handler is `async (request, session) -> Response`.
- `action(handler)`: a POST; refused with 403 unless `Origin`/`Sec-Fetch-Site` say
  same-origin AND the form's `csrf` field equals the session's token; then the role. The
  handler is `async (request, session, form) -> Response`.
- `perform(request, session, "Method", service.method, message)`: call a gRPC service
  method as the session's principal, exactly as the RPC would run (role check, rate limit,
  audit record and outcome with source `ui`); its refusal is a `Refused` naming the field.

A template puts the token in a form with `{{ csrf_field() }}` (see `templates/base.html`).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote

from grpclib import GRPCError
from grpclib.const import Status
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from contracts.auth import Role
from edge import audit, auth
from edge.portal.context import portal_of
from edge.portal.security import own_origin, same_origin
from edge.portal.sessions import IDLE, Session, SessionUnavailable
from edge.portal.templates import render

M = TypeVar("M")
R = TypeVar("R")
Endpoint = Callable[[Request], Awaitable[Response]]
PageHandler = Callable[[Request, Session], Awaitable[Response]]
ActionHandler = Callable[[Request, Session, FormData], Awaitable[Response]]

CSRF_FIELD = "csrf"
MAX_FORM = 256 * 1024
_HTTP = {
    Status.INVALID_ARGUMENT: 400,
    Status.UNAUTHENTICATED: 401,
    Status.PERMISSION_DENIED: 403,
    Status.NOT_FOUND: 404,
    Status.ALREADY_EXISTS: 409,
    Status.FAILED_PRECONDITION: 409,
    Status.RESOURCE_EXHAUSTED: 429,
    Status.UNAVAILABLE: 503,
}
_FIELD = re.compile(r"([A-Za-z_][\w.\[\]-]*): (.+)", re.DOTALL)


class Refused(Exception):
    """A refused form or action: `field` (empty if none) and `reason`, the gRPC refusal's."""

    def __init__(self, status: Status, field: str, reason: str) -> None:
        super().__init__(status, field, reason)
        self.status = status
        self.field = field
        self.reason = reason

    @classmethod
    def of(cls, exc: GRPCError) -> Refused:
        message = exc.message or exc.status.name
        match = _FIELD.fullmatch(message)
        if match:
            return cls(exc.status, match.group(1), match.group(2))
        return cls(exc.status, "", message)

    @property
    def http_status(self) -> int:
        return _HTTP.get(self.status, 500)

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


def error_page(
    request: Request, session: Session | None, status: int, title: str, message: str
) -> Response:
    return render(
        request,
        "error.html",
        {"title": title, "message": message, "status": status},
        session=session,
        status_code=status,
    )


def refused_page(request: Request, session: Session | None, refused: Refused) -> Response:
    return error_page(request, session, refused.http_status, "Refused", str(refused))


def own(request: Request) -> str:
    return own_origin(request.headers, request.url.scheme, portal_of(request).public_url)


def login_redirect(request: Request, why: str | None = None) -> Response:
    """To the sign-in form, and back here after; `why` (`IDLE`) has the form say why."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    ended = f"&ended={why}" if why else ""
    response = RedirectResponse(f"/login?next={quote(here, safe='')}{ended}", 303)
    if why:
        portal_of(request).sessions.clear_cookie(response)
    return response


def idle_message(request: Request) -> str:
    minutes = portal_of(request).sessions.idle.total_seconds() / 60
    shown = f"{minutes:g} minute" + ("" if minutes == 1 else "s")
    return f"You were signed out after {shown} without activity. Sign in again."


async def _session(request: Request) -> Session | str | None:
    return await portal_of(request).sessions.lookup(request)


def page(handler: PageHandler, role: Role = Role.VIEWER) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            session = await _session(request)
        except SessionUnavailable as exc:
            return error_page(request, None, 503, "Unavailable", str(exc))
        if not isinstance(session, Session):
            return login_redirect(request, session)
        if not session.principal.role.allows(role):
            return _role_refused(request, session, role)
        return await handler(request, session)

    return endpoint


def action(handler: ActionHandler, role: Role = Role.OPERATOR) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        why = same_origin(request.headers, own(request))
        if why is not None:
            return error_page(request, None, 403, "Cross-site request refused", why)
        try:
            session = await _session(request)
        except SessionUnavailable as exc:
            return error_page(request, None, 503, "Unavailable", str(exc))
        if session == IDLE:
            return error_page(request, None, 403, "Not signed in", idle_message(request))
        if not isinstance(session, Session):
            return error_page(request, None, 403, "Not signed in", "sign in, then try again")
        form = await read_form(request)
        if form is None:
            return error_page(request, session, 400, "Bad form", "not a form this site sent")
        sent = form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
            return error_page(
                request, session, 403, "Form refused", "missing or wrong form token; reload"
            )
        if not session.principal.role.allows(role):
            return _role_refused(request, session, role)
        return await handler(request, session, form)

    return endpoint


async def read_form(request: Request) -> FormData | None:
    """The request's URL-encoded form (what every portal form sends; no body is an empty
    form), at most `MAX_FORM` bytes; None for another body type or a larger one."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", ""):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM or (body and not kind):
            return None
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        return None
    fields: list[tuple[str, str | UploadFile]] = [(k, v) for k, v in pairs]
    return FormData(fields)


def _role_refused(request: Request, session: Session, role: Role) -> Response:
    principal = session.principal
    return error_page(
        request,
        session,
        403,
        "Not allowed",
        f"this needs role {role.value}; token {principal.name!r} has {principal.role.value}",
    )


async def perform(
    request: Request,
    session: Session,
    method: str,
    call: Callable[[M], Awaitable[R]],
    message: M,
) -> R:
    """`call(message)` as the gRPC method `method` runs for the session's principal."""
    portal = portal_of(request)
    principal = session.principal
    needed = auth.required_role(method)
    if not principal.role.allows(needed):
        raise Refused(
            Status.PERMISSION_DENIED,
            "",
            f"{method} needs role {needed.value}; token {principal.name!r} has"
            f" {principal.role.value}",
        )
    wait = portal.limits.take(principal.key, method)
    if wait:
        raise Refused.of(portal.limits.refusal(method, wait))
    log = audit.AuditLog(portal.bus.js, "ui")
    record = None
    if needed is not Role.VIEWER:
        target, origin = audit.target_of(message), audit.origin_of(request.client)
        try:
            record = await log.begin(principal, method, target, origin)
        except audit.AuditUnavailable:
            raise Refused(Status.UNAVAILABLE, "", "the audit log is unavailable") from None
    outcome = audit.OK
    reset = auth.current.set(principal)
    try:
        return await call(message)
    except GRPCError as exc:
        outcome = exc.status.name
        raise Refused.of(exc) from None
    finally:
        auth.current.reset(reset)
        if record is not None:
            await log.finish(record, outcome)  # best effort, and one publish: awaited


def field_errors(refused: Refused, fields: Any) -> dict[str, str]:
    """`{field: reason}` for a form whose inputs are named `fields`; a refusal naming no
    field of the form is shown at the top (key "")."""
    name = refused.field if refused.field in fields else ""
    return {name: refused.reason}
