"""`/`: the overview."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from edge.portal.context import portal_of
from edge.portal.forms import page
from edge.portal.sessions import Session
from edge.portal.templates import render


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


async def _overview(request: Request, session: Session) -> Response:
    portal = portal_of(request)
    return render(
        request,
        "overview.html",
        {"health": health_rows(request), "grpc_addr": portal.grpc_addr},
        session=session,
    )


endpoint = page(_overview)
