"""The admin portal: server-rendered pages on the edge's Starlette app.

Reads go to the queries service and changes through the gRPC services' own methods
(`forms.perform`), so the portal holds no database credentials and refuses what the API
refuses, with the same words. Module map: `security` (headers on every response, the
same-origin test), `sessions` (sign-ins in the `sessions` bucket), `forms` (page/action
guards, CSRF, `perform`), `templates` (Jinja2, autoescaped), `signin`, then one module per
page family.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from edge.portal import (
    findings,
    overview,
    reports,
    scanlist,
    scanpage,
    schedules,
    signin,
    startscan,
)

STATIC = Path(__file__).parent / "static"


def routes() -> list[BaseRoute]:
    return [
        Route("/", overview.endpoint),
        Route("/login", signin.login_form, methods=["GET"]),
        Route("/login", signin.login, methods=["POST"]),
        Route("/logout", signin.logout, methods=["POST"]),
        Route("/scans", scanlist.endpoint, methods=["GET"]),
        Route("/scans", startscan.submit_endpoint, methods=["POST"]),
        Route("/scans/new", startscan.new_endpoint, methods=["GET"]),
        Route("/scans/{id}", scanpage.endpoint, methods=["GET"]),
        Route("/scans/{id}/console.txt", scanpage.console_endpoint, methods=["GET"]),
        Route("/scans/{id}/cancel", scanpage.cancel_endpoint, methods=["POST"]),
        Route("/scans/{id}/rerun", scanpage.rerun_endpoint, methods=["POST"]),
        *findings.ROUTES,
        *schedules.ROUTES,
        *reports.ROUTES,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
