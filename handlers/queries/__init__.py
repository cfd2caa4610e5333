"""The queries role: answers `query.>` requests from PostgreSQL as a NATS micro service."""

from __future__ import annotations

import asyncio
import logging

from contracts import subjects
from contracts.settings import Settings
from handlers import bus, database
from handlers.queries.overview import OverviewQueries
from handlers.queries.reportqueries import ReportQueries
from handlers.queries.router import Queries
from handlers.queries.schedules import ScheduleQueries

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    pool = await database.connect_pool(settings.database_url)
    nc = await bus.connect(settings, "queries")
    try:
        q = Queries(pool, nc.jetstream())
        r = ReportQueries(pool, nc.jetstream())
        sq = ScheduleQueries(pool, nc.jetstream())
        ov = OverviewQueries(pool)
        service = await bus.register(
            nc,
            "queries",
            "Answers reads of scans, findings, output, reports, schedules, the audit log and"
            " the portal's overview.",
            {
                "scan-get": (subjects.query("scan", "get"), q.get_scan),
                "scan-list": (subjects.query("scan", "list"), q.list_scans),
                "finding-list": (subjects.query("finding", "list"), q.list_findings),
                "finding-get": (subjects.query("finding", "get"), q.get_finding),
                "output-list": (subjects.query("output", "list"), q.list_output),
                "report-get": (subjects.query("report", "get"), r.get_report),
                "report-list": (subjects.query("report", "list"), r.list_reports),
                "schedule-get": (subjects.query("schedule", "get"), sq.get_schedule),
                "schedule-list": (subjects.query("schedule", "list"), sq.list_schedules),
                "schedule-runs": (subjects.query("schedule", "runs"), sq.list_schedule_runs),
                "overview-get": (subjects.query("overview", "get"), ov.get),
                "audit-list": (subjects.query("audit", "list"), q.list_audit),
            },
        )
        await stop.wait()
        await service.stop()
    finally:
        await nc.drain()
        await pool.close()
