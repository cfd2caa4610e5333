"""`query.overview.get`: three small aggregate reads for the portal's front page."""

from __future__ import annotations

import asyncpg
from nats.micro.request import Request

from contracts.findings import Severity
from contracts.overview import GetOverview, Overview
from handlers import schedules
from handlers.queries.router import QueryError, _answer, _decode

MAX_NEXT_RUNS = 50
_BY_RANK = {s.rank: s.value for s in Severity}


async def overview(pool: asyncpg.Pool, next_runs: int) -> Overview:
    async with pool.acquire() as conn:
        statuses = await conn.fetch("SELECT status, count(*) AS n FROM scans GROUP BY status")
        severities = await conn.fetch(
            "SELECT coalesce(severity_override, severity) AS sev, count(*) AS n FROM findings"
            " WHERE state = 'open' AND triage <> 'false_positive' GROUP BY 1"
        )
        runs = await conn.fetch(
            f"SELECT {schedules.COLUMNS} FROM schedules"  # noqa: S608
            " WHERE NOT paused ORDER BY next_fire_at, id LIMIT $1",
            next_runs,
        )
    return Overview(
        scans_by_status={r["status"]: r["n"] for r in statuses},
        open_by_severity={_BY_RANK[r["sev"]]: r["n"] for r in severities if r["sev"] in _BY_RANK},
        next_runs=[schedules.view(r) for r in runs],
    )


class OverviewQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, req: Request) -> None:
        async def work() -> Overview:
            q = _decode(req.data, GetOverview)
            if not 0 <= q.next_runs <= MAX_NEXT_RUNS:
                raise QueryError(400, f"next_runs: must be 0-{MAX_NEXT_RUNS}")
            return await overview(self.pool, q.next_runs)

        await _answer(req, work)
