"""`/scans?domain=&target=&tool=&status=&schedule=&since=&until=&page=`: newest first, 100
a page, keyset paged; the URL is the whole state, so a filtered page can be bookmarked,
shared and reloaded, and the next page keeps the filter."""

from __future__ import annotations

from datetime import UTC, datetime

from grpclib import GRPCError
from starlette.requests import Request
from starlette.responses import Response

from contracts import subjects
from contracts.scans import ListScans, ScanPage, ScanStatus
from edge import validate
from edge.portal.context import portal_of
from edge.portal.forms import Refused, page
from edge.portal.sessions import Session
from edge.portal.templates import render
from scanners import TOOLS

PAGE_SIZE = 100
FILTERS = ("domain", "target", "tool", "status", "schedule", "since", "until")
_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")


class BadFilter(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def parse_time(field: str, text: str) -> datetime | None:
    """A `since`/`until` parameter: a date or a date and time, in UTC ("" for none)."""
    if not text:
        return None
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadFilter(field, "expected a UTC date, YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def list_request(params: dict[str, str], token: str) -> ListScans:
    """The query a page's parameters ask for, checked as ListScans checks its request."""
    status = None
    if params["status"]:
        try:
            status = ScanStatus(params["status"])
        except ValueError:
            names = ", ".join(s.value for s in ScanStatus)
            raise BadFilter("status", f"unknown status; expected one of {names}") from None
    since = parse_time("since", params["since"])
    until = parse_time("until", params["until"])
    try:
        domain, tool = validate.list_filters(params["domain"], params["tool"])
        since, until = validate.time_range(since, until)
        return ListScans(
            domain=domain,
            tool=tool,
            status=status,
            schedule_id=validate.optional_id("schedule", params["schedule"]),
            target=validate.target_filter("target", params["target"]),
            since=since,
            until=until,
            page_size=PAGE_SIZE,
            page_token=token,
        )
    except GRPCError as exc:
        refused = Refused.of(exc)
        raise BadFilter(refused.field, refused.reason) from None


async def _scans(request: Request, session: Session) -> Response:
    params = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    token = request.query_params.get("page", "")
    errors: dict[str, str] = {}
    result = ScanPage(scans=[])
    try:
        query = list_request(params, token)
        result = await portal_of(request).bus.query(subjects.query("scan", "list"), query, ScanPage)
    except BadFilter as exc:
        errors[exc.field if exc.field in FILTERS else ""] = exc.reason
    except GRPCError as exc:
        refused = Refused.of(exc)
        field = "page" if refused.field == "page_token" else refused.field
        errors[field if field in FILTERS else ""] = str(refused)
    return render(
        request,
        "scans.html",
        {
            "params": params,
            "errors": errors,
            "scans": result.scans,
            "next_page": result.next_page_token,
            "paged": bool(token),
            "tools": sorted(TOOLS),
            "statuses": [s.value for s in ScanStatus],
            "page_size": PAGE_SIZE,
        },
        session=session,
        status_code=400 if errors else 200,
    )


endpoint = page(_scans)
