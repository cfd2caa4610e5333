"""`query.report.get` and `query.report.list`: report rows, or the command of one not yet
picked up by the reports role."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.micro.request import Request

from contracts import reports, subjects
from handlers import reportstore
from handlers.queries import paging
from handlers.queries.router import QueryError, _answer, _decode, _window

_generate = msgspec.json.Decoder(reports.GenerateReport)


class ReportQueries:
    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext) -> None:
        self.pool = pool
        self.js = js

    async def get_report(self, req: Request) -> None:
        async def work() -> reports.ReportView:
            q = _decode(req.data, reports.GetReport)
            view = await reportstore.get_report(self.pool, q.id)
            if view is not None:
                return view
            # Accepted by the edge, not yet picked up: the command is the truth.
            try:
                subject = subjects.report_generate(q.id)
                raw = await self.js.get_last_msg("COMMANDS", subject)
            except (ValueError, NotFoundError):
                raise QueryError(404, f"report {q.id!r} not found") from None
            return reports.pending(_generate.decode(raw.data or b""))

        await _answer(req, work)

    async def list_reports(self, req: Request) -> None:
        async def work() -> reports.ReportPage:
            q = _decode(req.data, reports.ListReports)
            fmt = q.format.value if q.format else ""
            fhash = paging.filter_hash("reports", q.domain, q.scan_id, fmt)
            size, after = _window(q.page_size, q.page_token, fhash, datetime, str)
            rows, token = paging.trim(
                await reportstore.list_reports(self.pool, q, size + 1, after),
                size,
                fhash,
                lambda r: (r.created_at, r.id),
            )
            return reports.ReportPage(reports=rows, next_page_token=token)

        await _answer(req, work)
