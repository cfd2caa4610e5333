"""`/`: the overview. One query for the counts and the next runs, one list of running
scans with their heartbeats from the `heartbeats` bucket, one list of recent scans."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

import msgspec
import nats.errors
from grpclib import GRPCError
from starlette.requests import Request
from starlette.responses import Response

from contracts import subjects
from contracts.overview import GetOverview, Overview
from contracts.results import Heartbeat
from contracts.scans import ListScans, ScanPage, ScanStatus, ScanView
from edge.portal.context import Portal, portal_of
from edge.portal.forms import Refused, page, refused_page
from edge.portal.sessions import Session
from edge.portal.templates import SEVERITIES, render

RUNNING_SHOWN = 10
RECENT_SHOWN = 10
_heartbeat = msgspec.json.Decoder(Heartbeat)


@dataclass(frozen=True)
class Bar:
    severity: str
    count: int
    width: int  # of the chart's bar area, in SVG units
    y: int


def chart(counts: dict[str, int], width: int = 300, row: int = 26) -> list[Bar]:
    """Horizontal bars, most severe on top, scaled to the largest count."""
    top = max([counts.get(s, 0) for s in SEVERITIES] + [1])
    return [
        Bar(s, counts.get(s, 0), round(width * counts.get(s, 0) / top), i * row)
        for i, s in enumerate(SEVERITIES)
    ]


def health_rows(request: Request) -> list[dict[str, object]]:
    readiness = portal_of(request).readiness
    return [
        {
            "name": name,
            "serving": bool(status.__status__()),
            "reason": readiness.reasons.get(name, ""),
        }
        for name, status in readiness.services.items()
    ]


async def _heartbeats(portal: Portal, scans: list[ScanView]) -> dict[str, datetime]:
    beats: dict[str, datetime] = {}
    try:
        kv = await portal.bucket("heartbeats")
    except nats.errors.Error:
        return beats
    for scan in scans:
        with contextlib.suppress(nats.errors.Error, msgspec.ValidationError, msgspec.DecodeError):
            entry = await kv.get(subjects.token(scan.id))
            if entry.value:
                beats[scan.id] = _heartbeat.decode(entry.value).at
    return beats


async def _overview(request: Request, session: Session) -> Response:
    portal = portal_of(request)
    bus = portal.bus
    try:
        counts, running, recent = await asyncio.gather(
            bus.query(subjects.query("overview", "get"), GetOverview(), Overview),
            bus.query(
                subjects.query("scan", "list"),
                ListScans(status=ScanStatus.RUNNING, page_size=RUNNING_SHOWN),
                ScanPage,
            ),
            bus.query(
                subjects.query("scan", "list"), ListScans(page_size=RECENT_SHOWN * 2), ScanPage
            ),
        )
    except GRPCError as exc:
        return refused_page(request, session, Refused.of(exc))
    finished = [s for s in recent.scans if s.status.terminal][:RECENT_SHOWN]
    open_total = sum(counts.open_by_severity.values())
    return render(
        request,
        "overview.html",
        {
            "statuses": [(s.value, counts.scans_by_status.get(s.value, 0)) for s in ScanStatus],
            "running": running.scans,
            "more_running": bool(running.next_page_token),
            "heartbeats": await _heartbeats(portal, running.scans),
            "bars": chart(counts.open_by_severity),
            "open_total": open_total,
            "recent": finished,
            "next_runs": counts.next_runs,
            "health": health_rows(request),
            "grpc_addr": portal.grpc_addr,
        },
        session=session,
    )


endpoint = page(_overview)
