"""Every SQL statement of schedules and their runs: the scheduler writes, queries read.

Time is the database's (`now()`, plus an offset only tests set), so replicas with drifting
clocks agree on what is due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import msgspec

from contracts import cron
from contracts.scans import StartScan
from contracts.schedules import (
    ScheduleSpec,
    ScheduleView,
    UpsertSchedule,
    retimes,
    run_command,
    run_scan_id,
)
from handlers.scheduler import firing
from handlers.schedules import COLUMNS as _COLUMNS
from handlers.schedules import view as _schedule

_TERMINAL = "('succeeded', 'failed', 'cancelled', 'timed_out')"
# A started run whose scan ingest has not projected yet counts as running this long past
# its deadline; then it is taken as lost (liveness fails such scans anyway).
_UNPROJECTED_GRACE = 300


async def clock(conn: asyncpg.Connection, offset: float) -> datetime:
    now: datetime = await conn.fetchval("SELECT now() + make_interval(secs => $1)", offset)
    return now


def _next(spec: ScheduleSpec, schedule_id: str, now: datetime) -> tuple[datetime, datetime]:
    """(nominal, due) of the first fire after `now`."""
    c = cron.parse(spec.cron, spec.timezone)
    nominal = cron.next_fire(c, now)
    return nominal, nominal + firing.jitter(schedule_id, nominal, spec.jitter_seconds, c)


def _values(spec: ScheduleSpec) -> tuple[object, ...]:
    """A spec's columns in the order of the INSERT and UPDATE below."""
    return (
        spec.target,
        spec.domain,
        spec.tool,
        msgspec.json.encode(spec.config).decode(),
        spec.deadline_seconds,
        spec.cron,
        spec.timezone,
        spec.overlap,
        spec.catchup_window_seconds,
        spec.jitter_seconds,
        spec.paused,
        spec.pause_note,
    )


async def upsert(conn: asyncpg.Connection, cmd: UpsertSchedule, offset: float) -> bool:
    """Apply a create or update; return whether anything changed."""
    spec = cmd.spec
    async with conn.transaction():
        now = await clock(conn, offset)
        old = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM schedules WHERE id = $1 FOR UPDATE",  # noqa: S608
            cmd.schedule_id,
        )
        if cmd.create:
            if old is not None:
                return False
            nominal, due = _next(spec, cmd.schedule_id, now)
            await conn.execute(
                "INSERT INTO schedules (id, target, domain, tool, config, deadline_seconds,"
                " cron, timezone, overlap, catchup_window_seconds, jitter_seconds, paused,"
                " pause_note, request_id, created_by, created_at, updated_at, next_fire_at,"
                " due_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12,"
                " $13, $14, $15, $16, $16, $17, $18) ON CONFLICT (id) DO NOTHING",
                cmd.schedule_id,
                *_values(spec),
                cmd.request_id,
                cmd.requested_by,
                now,
                nominal,
                due,
            )
            return True
        if old is None:
            return False
        retime = retimes(_schedule(old).spec, spec)
        nominal, due = _next(spec, cmd.schedule_id, now)
        await conn.execute(
            "UPDATE schedules SET target = $2, domain = $3, tool = $4, config = $5::jsonb,"
            " deadline_seconds = $6, cron = $7, timezone = $8, overlap = $9,"
            " catchup_window_seconds = $10, jitter_seconds = $11, paused = $12,"
            " pause_note = $13, updated_at = $14,"
            " next_fire_at = CASE WHEN $15 THEN $16 ELSE next_fire_at END,"
            " due_at = CASE WHEN $15 THEN $17 ELSE due_at END WHERE id = $1",
            cmd.schedule_id,
            *_values(spec),
            now,
            retime,
            nominal,
            due,
        )
        return True


async def delete(conn: asyncpg.Connection, schedule_id: str) -> bool:
    done = await conn.execute("DELETE FROM schedules WHERE id = $1", schedule_id)
    return bool(done != "DELETE 0")


@dataclass(frozen=True)
class Claimed:
    """A run to publish: its StartScan, and the scan to cancel first (overlap `replace`)."""

    schedule_id: str
    nominal: datetime
    start: StartScan
    cancel_scan_id: str = ""


# Scope and config are checked again at every fire: (outcome, reason) to refuse, or None.
Check = Callable[[ScheduleView], "tuple[firing.Outcome, str] | None"]

_RUN_INSERT = (
    "INSERT INTO schedule_runs (schedule_id, nominal_time, trigger, outcome, scan_id,"
    " reason, state, cancel_scan_id, recorded_at)"
    " SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],"
    " $6::text[], $7::text[], $8::text[], $9::timestamptz[]) ON CONFLICT DO NOTHING"
)


# Move claimed schedules on, only if no one else did (the value read is still there).
_MOVE = (
    "UPDATE schedules s SET next_fire_at = u.nx, due_at = u.due,"
    " last_outcome = CASE WHEN u.oc <> '' THEN u.oc ELSE s.last_outcome END,"
    " last_run_at = coalesce(u.lr, s.last_run_at),"
    " last_scan_id = CASE WHEN u.ls <> '' THEN u.ls ELSE s.last_scan_id END"
    " FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[],"
    " $5::text[], $6::timestamptz[], $7::text[]) AS u(id, old, nx, due, oc, lr, ls)"
    " WHERE s.id = u.id AND s.next_fire_at = u.old"
)


class _Rows:
    """Rows gathered column by column for one `unnest` statement."""

    def __init__(self, sql: str, width: int) -> None:
        self.sql = sql
        self.cols: list[list[object]] = [[] for _ in range(width)]

    def add(self, *values: object) -> None:
        for col, v in zip(self.cols, values, strict=True):
            col.append(v)

    async def insert(self, conn: asyncpg.Connection) -> None:
        if self.cols[0]:
            await conn.execute(self.sql, *self.cols)


async def claim_due(
    conn: asyncpg.Connection, offset: float, check: Check, limit: int = 1000
) -> tuple[list[Claimed], dict[str, int], int]:
    """Claim what is due, in one transaction; return the runs to publish, counts by outcome
    and how many schedules were due.

    `FOR UPDATE SKIP LOCKED` hands each due schedule to one replica, the guarded update
    (`next_fire_at` unchanged) moves it on once, and the run rows are unique per nominal
    time: a fire is claimed once however many schedulers run.
    """
    claimed: list[Claimed] = []
    counts: dict[str, int] = {}
    async with conn.transaction():
        # No wait for the WAL flush: a claim lost with a PostgreSQL crash is claimed again
        # for the same nominal time, so it publishes the same scan id under the same
        # Nats-Msg-Id, which JetStream drops if the first publish got through.
        now = await conn.fetchval(
            "SELECT now() + make_interval(secs => $1)"
            " FROM set_config('synchronous_commit', 'off', true)",
            offset,
        )
        rows = await conn.fetch(
            f"SELECT {_COLUMNS}, CASE WHEN s.last_scan_id = '' THEN false ELSE coalesce("  # noqa: S608
            f" (SELECT sc.status NOT IN {_TERMINAL} FROM scans sc WHERE sc.id = s.last_scan_id),"
            " s.last_run_at + make_interval(secs => s.deadline_seconds + $3) > $1)"
            " END AS busy FROM schedules s WHERE due_at <= $1 ORDER BY due_at LIMIT $2"
            " FOR UPDATE SKIP LOCKED",
            now,
            limit,
            _UNPROJECTED_GRACE,
        )
        if not rows:
            return claimed, counts, 0
        runs = _Rows(_RUN_INSERT, 9)
        moves = _Rows(_MOVE, 7)
        for row in rows:
            view = _schedule(row)
            spec = view.spec
            try:
                c = cron.parse(spec.cron, spec.timezone)
            except cron.CronError as exc:
                # Stored before a rule changed (a zone gone from tzdata, say): say so once
                # per hour instead of holding up every schedule due after it.
                runs.add(view.id, row["next_fire_at"], "schedule", "failed", "", str(exc),
                         "done", "", now)  # fmt: skip
                counts["failed"] = counts.get("failed", 0) + 1
                at = row["next_fire_at"]
                moves.add(view.id, at, at, now + timedelta(hours=1), "failed", None, "")
                continue
            p = firing.plan(
                c,
                row["next_fire_at"],
                now,
                timedelta(seconds=spec.catchup_window_seconds),
                paused=spec.paused,
            )
            last: tuple[str, datetime | None, str] = ("", None, "")
            for rec in p.records:
                runs.add(
                    view.id,
                    rec.nominal,
                    "schedule",
                    rec.outcome.value,
                    "",
                    rec.reason,
                    "done",
                    "",
                    now,
                )
                counts[rec.outcome.value] = counts.get(rec.outcome.value, 0) + 1
                last = (rec.outcome.value, None, "")
            if p.run is not None:
                outcome, reason, start, cancel = _decide(view, p.run, bool(row["busy"]), check)
                scan = start.scan_id if start else ""
                runs.add(
                    view.id,
                    p.run,
                    "schedule",
                    outcome.value,
                    scan,
                    reason,
                    "claimed" if scan else "done",
                    cancel,
                    now,
                )
                counts[outcome.value] = counts.get(outcome.value, 0) + 1
                last = (outcome.value, p.run if scan else None, scan)
                if start:
                    claimed.append(Claimed(view.id, p.run, start, cancel))
            assert p.next_nominal is not None
            jit = firing.jitter(view.id, p.next_nominal, spec.jitter_seconds, c)
            moves.add(view.id, row["next_fire_at"], p.next_nominal, p.next_nominal + jit, *last)
        await runs.insert(conn)
        await moves.insert(conn)
    return claimed, counts, len(rows)


def _decide(
    view: ScheduleView, nominal: datetime, busy: bool, check: Check
) -> tuple[firing.Outcome, str, StartScan | None, str]:
    """(outcome, reason, the command to start or None, scan id to cancel first or "")."""
    refused = check(view)
    if refused is not None:
        return refused[0], refused[1], None, ""
    policy = firing.Overlap(view.spec.overlap)
    skip = firing.overlap_action(policy, busy)
    if skip is not None:
        return skip, f"scan {view.last_scan_id} of this schedule has not ended", None, ""
    cancel = view.last_scan_id if busy and policy is firing.Overlap.REPLACE else ""
    return firing.Outcome.STARTED, "", run_command(view, nominal, "schedule"), cancel


async def claim_manual(
    conn: asyncpg.Connection, schedule_id: str, nominal: datetime
) -> Claimed | None:
    """Record a run-now (never held back by a pause or an overlap; the edge checked it as it
    checks a StartScan and published its start command too); None if replayed or gone."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM schedules WHERE id = $1 FOR UPDATE",  # noqa: S608
            schedule_id,
        )
        if row is None:
            return None
        view = _schedule(row)
        scan = run_scan_id(view.id, nominal)
        inserted = await conn.fetchval(
            "INSERT INTO schedule_runs (schedule_id, nominal_time, trigger, outcome, scan_id,"
            " state) VALUES ($1, $2, 'manual', 'started', $3, 'claimed')"
            " ON CONFLICT DO NOTHING RETURNING 1",
            view.id,
            nominal,
            scan,
        )
        if not inserted:
            return None
        await conn.execute(
            "UPDATE schedules SET last_outcome = 'started', last_run_at = $2, last_scan_id = $3"
            " WHERE id = $1",
            view.id,
            nominal,
            scan,
        )
        return Claimed(view.id, nominal, run_command(view, nominal, "manual"))


async def upcoming(
    pool: asyncpg.Pool, offset: float, within: float, limit: int
) -> list[ScheduleView]:
    """Schedules due in the next `within` seconds, soonest first."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM schedules"  # noqa: S608
        " WHERE due_at <= now() + make_interval(secs => $1) ORDER BY due_at LIMIT $2",
        offset + within,
        limit,
    )
    return [_schedule(r) for r in rows]


async def mark_published(conn: asyncpg.Connection, runs: list[Claimed]) -> None:
    await conn.execute(
        "UPDATE schedule_runs r SET state = 'published', published_at = now()"
        " FROM unnest($1::text[], $2::timestamptz[]) AS u(id, nt)"
        " WHERE r.schedule_id = u.id AND r.nominal_time = u.nt AND r.state = 'claimed'",
        [r.schedule_id for r in runs],
        [r.nominal for r in runs],
    )


async def stale_claims(
    conn: asyncpg.Connection, offset: float, lease: float, limit: int = 1000
) -> list[Claimed]:
    """Claims older than `lease` seconds that no replica marked published (it died between
    claim and publish), locked for this transaction: the caller publishes and marks them."""
    now = await clock(conn, offset)
    rows = await conn.fetch(
        f"SELECT r.nominal_time, r.trigger, r.cancel_scan_id, {_COLUMNS}"  # noqa: S608
        " FROM schedule_runs r JOIN schedules s ON s.id = r.schedule_id"
        " WHERE r.state = 'claimed' AND r.recorded_at < $1::timestamptz - make_interval(secs => $2)"
        " ORDER BY r.recorded_at LIMIT $3 FOR UPDATE OF r SKIP LOCKED",
        now,
        lease,
        limit,
    )
    return [
        Claimed(
            r["id"],
            r["nominal_time"],
            run_command(_schedule(r), r["nominal_time"], r["trigger"]),
            r["cancel_scan_id"],
        )
        for r in rows
    ]
