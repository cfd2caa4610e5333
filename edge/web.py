"""The Starlette app: health routes for probes, report downloads, the live console
WebSocket (`edge/ws.py`) and the admin portal (`edge/portal/`), every response under
`SecurityHeaders`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from contracts import VERSION
from edge import portal as portal_pages
from edge.auth import TokenCache
from edge.metrics import HttpMetrics, counting_viewers
from edge.portal.context import Portal
from edge.portal.security import SecurityHeaders
from edge.reportfiles import ReportFiles
from edge.ws import NOT_FOUND, ConsoleSocket


def create_app(portal: Portal, tokens: TokenCache) -> Starlette:
    readiness = portal.readiness

    def health_rows() -> dict[str, dict[str, object]]:
        return {
            name: {"serving": bool(status.__status__()), "reason": readiness.reasons.get(name, "")}
            for name, status in readiness.services.items()
        }

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": VERSION})

    async def readyz(request: Request) -> JSONResponse:
        rows = health_rows()
        ready = all(r["serving"] for r in rows.values())
        return JSONResponse({"ready": ready, "services": rows}, status_code=200 if ready else 503)

    console = ConsoleSocket(
        portal.bus, tokens, sessions=portal.sessions, public_url=portal.public_url
    )
    app = Starlette(
        routes=[
            *portal_pages.routes(),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route(
                "/reports/{id}/{file}",
                ReportFiles(portal.bus, tokens, portal.sessions).download,
            ),
            # `{id:path}`: an empty id or one holding "/" is a bad id (4400), as WatchScan's
            # INVALID_ARGUMENT, not a missing endpoint (4404).
            WebSocketRoute("/ws/scans/{id:path}", counting_viewers(console.handle)),
            WebSocketRoute("/{path:path}", no_such_socket),
        ],
        # Outermost first: the headers go on everything, the metrics' own answers included.
        middleware=[Middleware(SecurityHeaders), Middleware(HttpMetrics)],
    )
    app.state.portal = portal
    return app


async def no_such_socket(ws: WebSocket) -> None:
    """Any other WebSocket path: a close code that says so (Starlette's default refuses the
    handshake, which clients report as HTTP 403, as if the token were at fault)."""
    await ws.accept()
    await ws.close(NOT_FOUND, "no such WebSocket endpoint; the console is /ws/scans/{id}")
