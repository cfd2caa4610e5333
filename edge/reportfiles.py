"""`GET /reports/{id}/{file}`: a ready report's file (or its snapshot), from the object store.

Authenticated like the API: `Authorization: Bearer <token>` of any role, or a portal
session's cookie (the browser's download link; a GET changes nothing, so no form token).
The edge learns whether the report is ready from the queries service and reads the bytes
over NATS, so it still holds no database credentials.
"""

from __future__ import annotations

import logging

from grpclib import GRPCError
from grpclib.const import Status
from nats.js.errors import NotFoundError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from contracts import reports, subjects
from contracts.auth import Role
from edge.auth import TokenCache, bearer
from edge.bus import Bus
from edge.portal.sessions import SessionStore, SessionUnavailable

log = logging.getLogger(__name__)

ARTIFACTS = "artifacts"
_HTTP = {Status.NOT_FOUND: 404, Status.INVALID_ARGUMENT: 400, Status.UNAVAILABLE: 503}
_TYPES = dict(reports.FILES.values()) | {reports.SNAPSHOT_FILE: "application/json"}


class ReportFiles:
    def __init__(self, bus: Bus, tokens: TokenCache, sessions: SessionStore | None = None) -> None:
        self.bus = bus
        self.tokens = tokens
        self.sessions = sessions

    async def _role(self, request: Request) -> Role | None:
        token = bearer(request.headers.get("authorization"))
        if token:
            record = self.tokens.lookup(token)
            return None if record is None else record.role
        if self.sessions is None:
            return None
        try:
            session = await self.sessions.find(request)
        except SessionUnavailable:
            return None
        return None if session is None else session.principal.role

    async def download(self, request: Request) -> Response:
        role = await self._role(request)
        if role is None:
            return PlainTextResponse(
                "missing, unknown or revoked token (or no session)",
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not role.allows(Role.VIEWER):
            return PlainTextResponse(f"role {role.value} may not read reports", 403)
        report_id, file = request.path_params["id"], request.path_params["file"]
        try:
            subjects.token(report_id)
        except ValueError:
            return PlainTextResponse("not a report id", 400)
        try:
            view = await self.bus.query(
                subjects.query("report", "get"), reports.GetReport(id=report_id), reports.ReportView
            )
        except GRPCError as exc:
            return PlainTextResponse(exc.message or "", _HTTP.get(exc.status, 500))
        if file not in (view.file, reports.SNAPSHOT_FILE):
            return PlainTextResponse(f"report {report_id} has no file {file!r}", 404)
        if view.status is not reports.ReportStatus.READY:
            return PlainTextResponse(f"report {report_id} is {view.status.value}", 409)
        try:
            store = await self.bus.js.object_store(ARTIFACTS)
            found = await store.get(reports.object_name(report_id, file))
        except NotFoundError:
            return PlainTextResponse(f"report {report_id}: {file} is gone from the store", 410)
        data = found.data or b""
        name = f"jetscan-{report_id}-{file}"
        return Response(
            data,
            media_type=_TYPES[file],
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Snapshot-Sha256": view.snapshot_sha256,
                "Cache-Control": "private, no-store",
            },
        )
