"""The Jinja2 environment (autoescaped, nothing ever marked safe) and its filters.

Scanner output is hostile: every value reaches the page as escaped text. `visible` also
shows control characters (ANSI colour codes included) as `␛[31m`-style glyphs, and `href`
lets only http(s) URLs become links.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from contracts import VERSION
from contracts.scans import ScanView
from edge.portal.sessions import Session

HERE = Path(__file__).parent
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SEVERITIES = ("critical", "high", "medium", "low", "info")


def visible(value: object) -> str:
    """`value` as text with every control character but tab and newline shown as its
    Unicode control picture (ESC → ␛), so an escape sequence is seen, never obeyed."""
    return _CONTROL.sub(_picture, str(value))


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # CONTROL PICTURES: ␀ ␁ … ␛ …
    return "\N{SYMBOL FOR DELETE}" if code == 0x7F else "\N{REPLACEMENT CHARACTER}"


def href(value: object) -> str | None:
    """`value` if it is an http(s) URL that may be a link; None otherwise."""
    text = str(value).strip()
    if _CONTROL.search(text) or any(c.isspace() for c in text):
        return None
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return text


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def scan_duration(scan: ScanView) -> str:
    """How long a scan ran (or has run so far)."""
    if scan.started_at is None:
        return "—"
    end = scan.finished_at or datetime.now(UTC)
    return duration((end - scan.started_at).total_seconds())


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    delta = ((now or datetime.now(UTC)) - value).total_seconds()
    return f"{duration(max(delta, 0))} ago"


def query(params: dict[str, str], **changes: str) -> str:
    """A query string of `params` with `changes` applied and empty values left out."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v})


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(
    visible=visible, when=when, duration=duration, ago=ago, scan_duration=scan_duration
)
ENV.globals.update(href=href, query=query, version=VERSION, severities=SEVERITIES)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    session: Session | None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page: `template` with `context`, the session (for the header, the role's controls
    and the form token) and the request's path (for the navigation)."""
    html = ENV.get_template(template).render(
        **context, session=session, path=request.url.path, request_query=request.url.query
    )
    return HTMLResponse(html, status_code, headers={"Cache-Control": "no-store"})
