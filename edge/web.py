"""The Starlette app: health routes for probes, the admin UI's entry page and the live
console WebSocket (`edge/ws.py`)."""

from __future__ import annotations

from html import escape

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from contracts import VERSION
from edge.auth import TokenCache
from edge.bus import Bus
from edge.health import Readiness
from edge.metrics import HttpMetrics, counting_viewers
from edge.reportfiles import ReportFiles
from edge.ws import NOT_FOUND, ConsoleSocket

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jetscan</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px system-ui,sans-serif;margin:2rem;max-width:50rem}}
td,th{{padding:.2rem .8rem;text-align:left}}</style></head>
<body><h1>jetscan {version}</h1>
<p>gRPC API on <code>{grpc}</code>. Service health:</p>
<table><tr><th>service</th><th>status</th><th>reason</th></tr>{rows}</table>
</body></html>"""


def create_app(readiness: Readiness, grpc_addr: str, bus: Bus, tokens: TokenCache) -> Starlette:
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

    async def index(request: Request) -> HTMLResponse:
        rows = "".join(
            f"<tr><td>{escape(n)}</td><td>{'SERVING' if r['serving'] else 'NOT_SERVING'}</td>"
            f"<td>{escape(str(r['reason']))}</td></tr>"
            for n, r in health_rows().items()
        )
        return HTMLResponse(_PAGE.format(version=VERSION, grpc=escape(grpc_addr), rows=rows))

    return Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/reports/{id}/{file}", ReportFiles(bus, tokens).download),
            # `{id:path}`: an empty id or one holding "/" is a bad id (4400), as WatchScan's
            # INVALID_ARGUMENT, not a missing endpoint (4404).
            WebSocketRoute(
                "/ws/scans/{id:path}", counting_viewers(ConsoleSocket(bus, tokens).handle)
            ),
            WebSocketRoute("/{path:path}", no_such_socket),
        ],
        middleware=[Middleware(HttpMetrics)],
    )


async def no_such_socket(ws: WebSocket) -> None:
    """Any other WebSocket path: a close code that says so (Starlette's default refuses the
    handshake, which clients report as HTTP 403, as if the token were at fault)."""
    await ws.accept()
    await ws.close(NOT_FOUND, "no such WebSocket endpoint; the console is /ws/scans/{id}")
