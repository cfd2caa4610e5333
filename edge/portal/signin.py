"""`/login` (GET the form, POST an API token) and POST `/logout`.

A sign-in POST has no session yet, so no form token: it is refused unless it comes from
this site (Origin / Sec-Fetch-Site), which is what stops another site from signing a
browser in under its own token.
"""

from __future__ import annotations

import logging

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from contracts.auth import Role
from edge.portal.context import portal_of
from edge.portal.forms import action, error_page, idle_message, own, read_form
from edge.portal.security import same_origin
from edge.portal.sessions import IDLE, Session, SessionUnavailable
from edge.portal.templates import render

log = logging.getLogger(__name__)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site's URL."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or any(ord(c) < 0x21 or c == "\\" for c in value)
        or len(value) > 2000
    ):
        return "/"
    return value


def _form(
    request: Request, nxt: str, error: str = "", status: int = 200, notice: str = ""
) -> Response:
    return render(
        request,
        "login.html",
        {"next": nxt, "error": error, "notice": notice},
        session=None,
        status_code=status,
    )


async def login_form(request: Request) -> Response:
    nxt = safe_next(request.query_params.get("next"))
    try:
        session = await portal_of(request).sessions.find(request)
    except SessionUnavailable:
        session = None
    if session is not None:
        return RedirectResponse(nxt, 303)
    ended = request.query_params.get("ended") == IDLE
    return _form(request, nxt, notice=idle_message(request) if ended else "")


async def login(request: Request) -> Response:
    why = same_origin(request.headers, own(request))
    if why is not None:
        return error_page(request, None, 403, "Cross-site request refused", why)
    form = await read_form(request)
    if form is None:
        return error_page(request, None, 400, "Bad form", "not a form this site sent")
    nxt = safe_next(_text(form, "next"))
    token = _text(form, "token").strip()
    if not token:
        return _form(request, nxt, "token: required", 400)
    store = portal_of(request).sessions
    client = request.client
    try:
        opened = await store.open(token, f"{client.host}:{client.port}" if client else "")
    except SessionUnavailable as exc:
        return _form(request, nxt, str(exc), 503)
    if opened is None:
        return _form(request, nxt, "token: unknown, revoked or expired", 401)
    cookie, record = opened
    log.info("portal sign-in of token %r (%s)", record.name, record.role.value)
    response = RedirectResponse(nxt, 303)
    store.set_cookie(response, cookie)
    return response


async def _logout(request: Request, session: Session, form: FormData) -> Response:
    store = portal_of(request).sessions
    await store.close(session)
    response = RedirectResponse("/login", 303)
    store.clear_cookie(response)
    return response


logout = action(_logout, role=Role.VIEWER)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""
