"""Request handlers of the queries service: decode, read, encode, or answer an error."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.micro.request import Request

from contracts import audit, output, scans, subjects, tracking, wire
from handlers import auditstore, findingviews, outputstore, store
from handlers.admission import Mirror
from handlers.queries import paging

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_OUTPUT_PAGE = 5000


class QueryError(Exception):
    """A request the service answers with an error code instead of a result."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _decode(data: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(data, type=kind)
    except wire.UNDECODABLE as exc:
        raise QueryError(400, f"malformed request: {exc}") from exc


def _window(
    page_size: int, page_token: str, fhash: str, *types: type
) -> tuple[int, tuple[Any, ...] | None]:
    """`paging.window`, a bad size or token answered as a 400."""
    try:
        return paging.window(page_size, page_token, fhash, *types)
    except ValueError as exc:
        raise QueryError(400, str(exc)) from exc


async def _answer(req: Request, work: Callable[[], Awaitable[object]]) -> None:
    try:
        result = await work()
    except QueryError as exc:
        await req.respond_error(str(exc.code), exc.description)
        return
    except (asyncpg.PostgresError, OSError) as exc:
        log.exception("query failed")
        await req.respond_error("503", f"database unavailable: {type(exc).__name__}")
        return
    await req.respond(wire.encode(result))


_start = msgspec.json.Decoder(scans.StartScan)


class Queries:
    def __init__(
        self, pool: asyncpg.Pool, js: JetStreamContext, admission: Mirror | None = None
    ) -> None:
        self.pool = pool
        self.js = js
        self.admission = admission

    async def _command(self, scan_id: str) -> scans.StartScan | None:
        try:
            raw = await self.js.get_last_msg("COMMANDS", subjects.scan_start(scan_id))
        except NotFoundError:
            return None
        return _start.decode(raw.data or b"")

    async def get_scan(self, req: Request) -> None:
        async def work() -> scans.ScanView:
            q = _decode(req.data, scans.GetScan)
            view = await store.get_scan(self.pool, q.id)
            if view is None:
                # Accepted by the edge but not yet projected: the command is the truth.
                cmd = await self._command(q.id)
                if cmd is None:
                    raise QueryError(404, f"scan {q.id!r} not found")
                view = scans.queued(cmd)
            if view.status is scans.ScanStatus.QUEUED and self.admission is not None:
                cmd = scans.StartScan(
                    scan_id=view.id,
                    target=view.target,
                    domain=view.domain,
                    tool=view.tool,
                    config={},
                    deadline_seconds=view.deadline_seconds,
                    requested_by=view.requested_by,
                    requested_at=view.created_at,
                )
                position = self.admission.position(cmd)
                view = msgspec.structs.replace(view, queue_position=position)
            return view

        await _answer(req, work)

    async def list_findings(self, req: Request) -> None:
        async def work() -> scans.FindingPage:
            q = _decode(req.data, scans.ListFindings)
            if q.change is not None and not q.changed_in_scan:
                raise QueryError(400, "change: needs changed_in_scan")
            if q.scan_id and q.changed_in_scan and q.scan_id != q.changed_in_scan:
                raise QueryError(400, "changed_in_scan: differs from scan_id; give one of them")
            filters = msgspec.structs.asdict(q)
            del filters["page_size"], filters["page_token"]
            fhash = paging.filter_hash("findings", *sorted(filters.items()))
            size, after = _window(q.page_size, q.page_token, fhash, int, int)
            for scan_id in {q.scan_id, q.changed_in_scan} - {""}:
                known = await store.scan_exists(self.pool, scan_id)
                if not known and await self._command(scan_id) is None:
                    raise QueryError(404, f"scan {scan_id!r} not found")
            rows, token = paging.trim(
                await findingviews.list_findings(self.pool, q, size + 1, after),
                size,
                fhash,
                lambda r: (r[0], r[1]),
            )
            return scans.FindingPage(findings=[f for _, _, f in rows], next_page_token=token)

        await _answer(req, work)

    async def get_finding(self, req: Request) -> None:
        async def work() -> scans.StoredFinding:
            q = _decode(req.data, tracking.GetFinding)
            found = await findingviews.get_finding(self.pool, q.id)
            if found is None:
                raise QueryError(404, f"finding {q.id!r} not found")
            return found

        await _answer(req, work)

    async def list_scans(self, req: Request) -> None:
        async def work() -> scans.ScanPage:
            q = _decode(req.data, scans.ListScans)
            status = q.status.value if q.status else ""
            if q.since and q.until and q.since >= q.until:
                raise QueryError(400, "until: must be after since")
            fhash = paging.filter_hash(
                "scans", q.domain, q.tool, status, q.schedule_id, q.target, q.since, q.until
            )
            size, after = _window(q.page_size, q.page_token, fhash, datetime, str)
            rows = await store.list_scans(
                self.pool,
                domain=q.domain,
                tool=q.tool,
                status=status,
                schedule_id=q.schedule_id,
                target=q.target,
                since=q.since,
                until=q.until,
                limit=size + 1,
                after=after,
            )
            page, token = paging.trim(rows, size, fhash, lambda s: (s.created_at, s.id))
            return scans.ScanPage(scans=page, next_page_token=token)

        await _answer(req, work)

    async def list_output(self, req: Request) -> None:
        async def work() -> output.OutputPage:
            q = _decode(req.data, output.ListOutput)
            if q.after_seq < 0 or q.limit < 0:
                raise QueryError(400, "after_seq and limit must not be negative")
            limit = min(q.limit or MAX_OUTPUT_PAGE, MAX_OUTPUT_PAGE)
            lines = await outputstore.list_output(self.pool, q.scan_id, q.after_seq, limit)
            # Only an empty page pays for telling "no lines yet" from "no such scan".
            if (
                not lines
                and not await store.scan_exists(self.pool, q.scan_id)
                and await self._command(q.scan_id) is None
            ):
                raise QueryError(404, f"scan {q.scan_id!r} not found")
            return output.OutputPage(lines=lines)

        await _answer(req, work)

    async def list_audit(self, req: Request) -> None:
        async def work() -> audit.AuditPage:
            q = _decode(req.data, audit.ListAudit)
            since = q.since.isoformat() if q.since else ""
            fhash = paging.filter_hash("audit", since, q.who)
            size, after = _window(q.page_size, q.page_token, fhash, datetime, str)
            rows = await auditstore.list_records(
                self.pool, since=q.since, who=q.who, limit=size + 1, after=after
            )
            page, token = paging.trim(rows, size, fhash, lambda r: (r.at, r.id))
            return audit.AuditPage(records=page, next_page_token=token)

        await _answer(req, work)
