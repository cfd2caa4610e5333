"""The scheduler role: keeps schedules in PostgreSQL and starts their scans when due.

Schedule commands (`cmd.schedule.<id>.upsert|delete|run`) arrive on a durable consumer.
A loop claims what is due (`store.claim_due`: one transaction, `FOR UPDATE SKIP LOCKED`,
a unique run row per nominal time), then publishes each run's StartScan with a
`Nats-Msg-Id` derived from (schedule, nominal time), then marks the runs published. A
replica that dies between claim and publish leaves `claimed` rows that any replica
publishes after a lease; JetStream drops the second copy if the first got through, and the
launcher's `launches` key would refuse a second job anyway. So any number of replicas fire
each nominal time once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext

from contracts import cron, subjects, tracing, wire
from contracts.scans import CancelScan
from contracts.schedules import (
    DeleteSchedule,
    RunSchedule,
    ScheduleCommand,
    ScheduleSpec,
    ScheduleView,
    UpsertSchedule,
)
from contracts.settings import Settings
from handlers import bus, database, metrics, topology
from handlers.delivery import Unprocessable, one_by_one
from handlers.scheduler import firing, store
from scanners.errors import ConfigError, OutOfScope, RequestError, TargetError, Unsupported
from scanners.requests import Capabilities, validate_start
from scanners.scope import Scope

log = logging.getLogger(__name__)

_commands = msgspec.json.Decoder(ScheduleCommand)
# A claim not marked published after this long is published again by any replica: longer
# than publishing a busy minute takes (10,000 fires took up to ~13 s in `bench schedules`).
LEASE_SECONDS = 30.0
# The longest the loop sleeps: a schedule created meanwhile is seen within this.
MAX_SLEEP = 0.5
CLAIM_BATCH = 250
# Scope checks kept (see Scheduler.check); about 200 bytes each.
MAX_CHECKED = 50_000
# A run published this long after its nominal time was caught up (the scheduler, NATS or
# PostgreSQL had been down): `jetscan_schedule_missed_fires_total{outcome="caught_up"}`.
CAUGHT_UP_AFTER = 60.0
# Seconds between looks at what is due in the next minute.
PREPARE_EVERY = 10.0


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext, settings: Settings) -> None:
        self.pool = pool
        self.js = js
        self.scope = Scope.parse(settings.scope)
        self.capabilities = Capabilities.of(settings)
        self.offset = settings.scheduler_clock_offset
        # Outcomes by name, plus `published` and `republished`: for metrics (issue 19).
        self.counters: Counter[str] = Counter()
        self.checked: dict[tuple[str, datetime], tuple[firing.Outcome, str] | None] = {}

    def check(self, view: ScheduleView) -> tuple[firing.Outcome, str] | None:
        """StartScan's checks, again at each fire: the scope or a tool's rules may have
        changed since the schedule was accepted.

        The answer depends only on the schedule's settings (which change only with
        `updated_at`), this process's scope and its code, so it is kept per (id,
        updated_at): `prepare` works it out for the coming minute while the loop is idle,
        and the fire finds the same answer it would compute.
        """
        key = (view.id, view.updated_at)
        if key not in self.checked:
            if len(self.checked) >= MAX_CHECKED:
                self.checked.clear()
            self.checked[key] = self._validate(view.spec)
        return self.checked[key]

    async def prepare(self, budget: float) -> bool:
        """Check the schedules due in the next minute before they are due, for at most
        `budget` seconds; return whether all of them are checked."""
        loop = asyncio.get_running_loop()
        end = loop.time() + budget
        for view in await store.upcoming(self.pool, self.offset, 65, MAX_CHECKED // 2):
            if loop.time() > end:
                return False
            self.check(view)
        return True

    def _validate(self, spec: ScheduleSpec) -> tuple[firing.Outcome, str] | None:
        try:
            validate_start(
                spec.tool,
                spec.target,
                spec.config,
                spec.deadline_seconds,
                self.scope,
                capabilities=self.capabilities,
            )
        except OutOfScope as exc:
            return firing.Outcome.REFUSED_SCOPE, str(exc)
        except (RequestError, TargetError, ConfigError, Unsupported) as exc:
            return firing.Outcome.FAILED, str(exc)
        return None

    async def publish(self, runs: list[store.Claimed]) -> None:
        """Publish the runs' commands (cancels first) and wait for every ack."""
        cancels = [r for r in runs if r.cancel_scan_id]
        for r in cancels:
            cmd = CancelScan(
                scan_id=r.cancel_scan_id,
                requested_by=f"schedule {r.schedule_id}",
                requested_at=r.nominal,
            )
            await self.js.publish(
                subjects.scan_cancel(r.cancel_scan_id),
                wire.encode(cmd),
                headers={"Nats-Msg-Id": subjects.msg_id("scan", r.cancel_scan_id, "cancel")},
                timeout=5,
            )
        acks = []
        for r in runs:
            sid = r.start.scan_id
            # The scan's trace starts at the fire, and continues as from a StartScan RPC.
            with tracing.span("schedule fire", scan=sid):
                headers = tracing.inject({"Nats-Msg-Id": subjects.msg_id("scan", sid, "start")})
                acks.append(
                    await self.js.publish_async(
                        subjects.scan_start(sid), wire.encode(r.start), headers=headers
                    )
                )
        await asyncio.wait_for(asyncio.gather(*acks), 30)
        self.counters["published"] += len(runs)
        now = datetime.now(UTC) + timedelta(seconds=self.offset)
        for r in runs:
            lag = (now - r.nominal).total_seconds()
            metrics.SCHEDULE_LAG.observe(max(lag, 0.0))
            if lag > CAUGHT_UP_AFTER:
                metrics.SCHEDULE_MISSED.labels("caught_up").inc()

    async def _publish_claimed(self, claimed: list[store.Claimed]) -> None:
        try:
            await self.publish(claimed)
            async with self.pool.acquire() as conn:
                await store.mark_published(conn, claimed)
        except Exception:
            # Still `claimed` in PostgreSQL: published again after the lease.
            log.exception("publishing %d claimed runs failed", len(claimed))

    async def fire_due(self) -> int:
        """Claim and publish what is due now; return how many schedules were handled.

        Claims go in batches, each published while the next is claimed, so the first scans
        of a busy minute start before the last are claimed, and replicas share the work.
        """
        loop = asyncio.get_running_loop()
        began = loop.time()
        handled = 0
        publishing: list[asyncio.Task[None]] = []
        try:
            while True:
                async with self.pool.acquire() as conn:
                    claimed, counts, batch = await store.claim_due(
                        conn, self.offset, self.check, CLAIM_BATCH
                    )
                self.counters.update(counts)
                for outcome, n in counts.items():
                    metrics.SCHEDULE_FIRES.labels(outcome).inc(n)
                    if outcome == firing.Outcome.MISSED.value:
                        metrics.SCHEDULE_MISSED.labels("skipped").inc(n)
                handled += batch
                if claimed:
                    publishing.append(asyncio.create_task(self._publish_claimed(claimed)))
                if batch < CLAIM_BATCH:
                    return handled
        finally:
            claiming = loop.time() - began
            if publishing:
                await asyncio.gather(*publishing)
            if handled:
                log.info(
                    "%d due schedules handled in %.2fs (claiming took %.2fs)",
                    handled,
                    loop.time() - began,
                    claiming,
                )

    async def republish_stale(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            stale = await store.stale_claims(conn, self.offset, LEASE_SECONDS)
            if stale:
                log.warning("publishing %d runs claimed by a replica that stopped", len(stale))
                await self.publish(stale)
                await store.mark_published(conn, stale)
        self.counters["republished"] += len(stale)
        return len(stale)

    async def until_due(self) -> float:
        """Seconds until the earliest due schedule (an hour when there is none)."""
        wait = await self.pool.fetchval(
            "SELECT extract(epoch FROM min(due_at) - (now() + make_interval(secs => $1)))"
            " FROM schedules",
            self.offset,
        )
        return 3600.0 if wait is None else max(0.0, float(wait))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        since_sweep = 0.0
        prepared_at = -PREPARE_EVERY
        complete = True
        while True:
            try:
                await self.fire_due()
                since_sweep += 1
                if since_sweep >= 4:
                    since_sweep = 0
                    await self.republish_stale()
                wait = await self.until_due()
                # Only well before a fire, a little at a time: preparing never delays one.
                due_again = not complete or loop.time() - prepared_at >= PREPARE_EVERY
                if wait >= 2 and due_again:
                    prepared_at = loop.time()
                    complete = await self.prepare(min(0.3, wait - 1.5))
                    wait = await self.until_due()
                await asyncio.sleep(min(wait, MAX_SLEEP))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("firing schedules failed; retrying in 1s")
                await asyncio.sleep(1)

    async def apply(self, command: ScheduleCommand) -> None:
        match command:
            case UpsertSchedule() as upsert:
                try:
                    cron.parse(upsert.spec.cron, upsert.spec.timezone)
                except cron.CronError as exc:
                    raise Unprocessable(f"schedule {upsert.schedule_id}: {exc}") from None
                async with self.pool.acquire() as conn:
                    await store.upsert(conn, upsert, self.offset)
            case DeleteSchedule() as delete:
                async with self.pool.acquire() as conn:
                    await store.delete(conn, delete.schedule_id)
            case RunSchedule() as run:
                async with self.pool.acquire() as conn:
                    claimed = await store.claim_manual(conn, run.schedule_id, run.nominal_time)
                if claimed is not None:
                    await self.publish([claimed])
                    async with self.pool.acquire() as conn:
                        await store.mark_published(conn, [claimed])


def build(broker: NatsBroker, scheduler: Scheduler, topo: topology.Topology) -> None:
    # In stream order: an update never lands before its create.
    @one_by_one(broker, topo, "scheduler-commands")
    async def on_command(msg: NatsMessage) -> None:
        await scheduler.apply(_commands.decode(msg.body))


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    pool = await database.connect_pool(settings.database_url)
    nc = await bus.connect(settings, "scheduler")
    broker = bus.make_broker(settings, "scheduler")
    scheduler = Scheduler(pool, nc.jetstream(), settings)
    build(broker, scheduler, topology.load())
    loop: asyncio.Task[None] | None = None
    try:
        await broker.start()
        loop = asyncio.create_task(scheduler.run(), name="scheduler-loop")
        service = await bus.register(
            nc, "scheduler", "Starts scans of a target on its cron schedule."
        )
        await stop.wait()
        await service.stop()
    finally:
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await broker.stop()
        await nc.drain()
        await pool.close()
