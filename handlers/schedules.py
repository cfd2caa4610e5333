"""Schedule rows as views, and the reads the queries service answers.

The scheduler (`handlers/scheduler/store.py`) writes these tables; the queries role reads
them through this module, so neither role imports the other.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from contracts.schedules import ListSchedules, RunView, ScheduleSpec, ScheduleView


def view(row: asyncpg.Record) -> ScheduleView:
    return ScheduleView(
        id=row["id"],
        spec=ScheduleSpec(
            target=row["target"],
            domain=row["domain"],
            tool=row["tool"],
            config=msgspec.json.decode(row["config"]),
            deadline_seconds=row["deadline_seconds"],
            cron=row["cron"],
            timezone=row["timezone"],
            overlap=row["overlap"],
            catchup_window_seconds=row["catchup_window_seconds"],
            jitter_seconds=row["jitter_seconds"],
            paused=row["paused"],
            pause_note=row["pause_note"],
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        created_by=row["created_by"],
        next_run_at=row["next_fire_at"],
        last_run_at=row["last_run_at"],
        last_scan_id=row["last_scan_id"],
        last_outcome=row["last_outcome"],
    )


COLUMNS = (
    "id, target, domain, tool, config::text AS config, deadline_seconds, cron, timezone,"
    " overlap, catchup_window_seconds, jitter_seconds, paused, pause_note, created_by,"
    " created_at, updated_at, next_fire_at, due_at, last_run_at, last_scan_id, last_outcome"
)


async def get(pool: asyncpg.Pool, schedule_id: str) -> ScheduleView | None:
    row = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM schedules WHERE id = $1",  # noqa: S608
        schedule_id,
    )
    return view(row) if row else None


async def list_schedules(
    pool: asyncpg.Pool, q: ListSchedules, limit: int, after: tuple[datetime, str] | None
) -> list[ScheduleView]:
    where: list[str] = ["TRUE"]
    args: list[object] = []
    for column, value in (("target", q.target), ("domain", q.domain), ("tool", q.tool)):
        if value:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if q.paused is not None:
        args.append(q.paused)
        where.append(f"paused = ${len(args)}")
    if after:
        args.extend(after)
        where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM schedules WHERE {' AND '.join(where)}"  # noqa: S608
        f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
        *args,
    )
    return [view(r) for r in rows]


async def list_runs(
    pool: asyncpg.Pool, schedule_id: str, limit: int, after: datetime | None
) -> list[RunView]:
    rows = await pool.fetch(
        "SELECT nominal_time, trigger, outcome, scan_id, reason, recorded_at"
        " FROM schedule_runs WHERE schedule_id = $1 AND ($2::timestamptz IS NULL"
        " OR nominal_time < $2) ORDER BY nominal_time DESC LIMIT $3",
        schedule_id,
        after,
        limit,
    )
    return [
        RunView(
            schedule_id=schedule_id,
            nominal_time=r["nominal_time"],
            trigger=r["trigger"],
            outcome=r["outcome"],
            scan_id=r["scan_id"],
            reason=r["reason"],
            recorded_at=r["recorded_at"],
        )
        for r in rows
    ]
