"""The ingest role: projects scan commands, events, results and console lines into PostgreSQL,
and fails scans whose jobs went silent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError

from contracts import subjects, tracing, wire
from contracts.audit import AuditRecord
from contracts.output import OutputMessage, lines_of
from contracts.results import Heartbeat, ScanResult
from contracts.scans import ScanCommand, ScanEvent, ScanStatus, StartScan, event_id
from contracts.settings import Settings
from contracts.tracking import TriageFinding
from handlers import (
    auditstore,
    backlog,
    bus,
    database,
    findings,
    metrics,
    outputstore,
    store,
    topology,
)
from handlers.delivery import (
    Unprocessable,
    consume_batches,
    delivered,
    one_by_one,
)
from handlers.ingest.liveness import is_lost, lost
from handlers.ingest.provenance import mismatch

log = logging.getLogger(__name__)

_commands = msgspec.json.Decoder(ScanCommand)
_events = msgspec.json.Decoder(ScanEvent)
_results = msgspec.json.Decoder(ScanResult)
_output = msgspec.json.Decoder(OutputMessage)
_heartbeat = msgspec.json.Decoder(Heartbeat)
_finding_commands = msgspec.json.Decoder(TriageFinding)
_audit = msgspec.json.Decoder(AuditRecord)


async def _never_started(js: JetStreamContext, scan_id: str) -> bool:
    """Whether COMMANDS holds no start command for `scan_id`.

    An event or result for a scan the database does not know yet is retried: its start
    command is about to be projected. Without a command there is nothing to wait for (an
    event replayed from another installation, say), and retrying such messages for ~15 s
    each would hold the consumer's ack slots from the ones that can be applied.
    """
    try:
        await js.get_last_msg("COMMANDS", subjects.scan_start(scan_id))
    except NotFoundError:
        return True
    return False


async def _unknown(js: JetStreamContext, exc: store.UnknownScan) -> Exception:
    """What to raise for `exc`: itself (retried), or `Unprocessable` (parked now)."""
    scan_id = exc.scan_id
    if await _never_started(js, scan_id):
        return Unprocessable(f"scan {scan_id} was never started: no start command in COMMANDS")
    return exc


def build(
    broker: NatsBroker, pool: asyncpg.Pool, topo: topology.Topology, js: JetStreamContext
) -> None:
    events = topo.consumer("ingest-scan-events")

    # Lifecycle events are few and latency-bound: one at a time, as they come.
    @one_by_one(broker, topo, events.durable, span="ingest event")
    async def on_event(msg: NatsMessage) -> None:
        event = _events.decode(msg.body)
        tracing.mark_scan(event.scan_id)
        # Wait a few redeliveries (0.5 s, 1 s, 2 s, 4 s) for the result; a job that
        # never sent one still ends. A result whose parts are still being stored is
        # waited for until the last delivery (~1 min), which applies the event anyway.
        attempt = delivered(msg)
        try:
            async with pool.acquire() as conn:
                new = await store.apply_event(
                    conn,
                    event,
                    await_result=attempt <= 4,
                    await_parts=attempt < events.max_deliver,
                )
        except store.UnknownScan as exc:
            raise await _unknown(js, exc) from None
        if new is not None:
            log.info("scan %s is %s", event.scan_id, new.value)
        metrics.EVENTS.labels(event.status.value, "ignored" if new is None else "applied").inc()

    # In stream order, so a finding's latest triage command is its triage.
    @one_by_one(broker, topo, "ingest-finding-commands")
    async def on_finding_command(msg: NatsMessage) -> None:
        cmd = _finding_commands.decode(msg.body)
        try:
            async with pool.acquire() as conn:
                applied = await findings.apply_triage(conn, cmd)
        except findings.UnknownFinding:
            raise Unprocessable(f"finding {cmd.finding_id} does not exist") from None
        if applied:
            log.info("finding %s triaged %s by %s", cmd.finding_id, cmd.triage, cmd.requested_by)

    # One at a time, in stream order: a multi-part result completes with its last part.
    @one_by_one(broker, topo, "ingest-results", span="ingest result")
    async def on_result(msg: NatsMessage) -> None:
        result = _results.decode(msg.body)
        tracing.mark_scan(result.scan_id)
        try:
            async with pool.acquire() as conn:
                known = await store.scan_identity(conn, result.scan_id)
                if known is not None:
                    wrong = mismatch(msg.raw_message.subject, result, *known)
                    if wrong:
                        raise Unprocessable(wrong)
                n = await store.store_result(conn, result)
        except store.UnknownScan as exc:
            raise await _unknown(js, exc) from None
        log.info("scan %s: %d findings from %s", result.scan_id, n, result.tool)


async def _ended_on_bus(js: JetStreamContext, scan_id: str) -> bool:
    """Whether EVENTS holds a terminal event of `scan_id` that the database does not show yet.

    A job that ended while its end could not be projected (PostgreSQL down, ingest behind or
    restarting) is silent because it is done, not lost: failing it would override its real
    end, which is on its way (found by the fault tests: a 20 s PostgreSQL stop turned
    succeeded scans into lost ones).
    """
    for status in (s for s in ScanStatus if s.terminal):
        try:
            await js.get_last_msg("EVENTS", subjects.scan_event(scan_id, status))
        except NotFoundError:
            continue
        return True
    return False


async def watch_liveness(
    pool: asyncpg.Pool,
    nc: Client,
    *,
    heartbeat_timeout: float,
    launch_timeout: float,
    interval: float,
    max_attempts: int = 1,
) -> None:
    js = nc.jetstream()
    kv = await js.key_value("heartbeats")
    while True:
        try:
            now = datetime.now(UTC)
            for scan_id, status, since, attempts in await store.active_scans(
                pool, heartbeat_timeout
            ):
                last: datetime | None = None
                with contextlib.suppress(KeyNotFoundError):
                    entry = await kv.get(scan_id)
                    if entry.value:
                        last = _heartbeat.decode(entry.value).at
                if is_lost(
                    status,
                    since,
                    last,
                    now,
                    heartbeat_timeout=timedelta(seconds=heartbeat_timeout),
                    launch_timeout=timedelta(seconds=launch_timeout),
                ) and not await _ended_on_bus(js, scan_id):
                    log.warning("scan %s lost (last heartbeat %s)", scan_id, last)
                    event = lost(scan_id, now, attempts, max_attempts)
                    await js.publish(
                        subjects.scan_event(scan_id, event.status.value),
                        wire.encode(event),
                        headers={"Nats-Msg-Id": event_id(scan_id, event.status, event.attempt)},
                    )
        except Exception:
            log.exception("liveness sweep failed")
        await asyncio.sleep(interval)


async def expire_accepted_risks(pool: asyncpg.Pool, interval: float) -> None:
    """Accepted risks past their expiry go back to untriaged (reads treat them so at once;
    this records it in each finding's history)."""
    while True:
        try:
            async with pool.acquire() as conn:
                n = await findings.expire_triage(conn, datetime.now(UTC))
            if n:
                log.info("%d accepted risks expired", n)
        except Exception:
            log.exception("expiring accepted risks failed")
        await asyncio.sleep(interval)


async def consume_bursts(js: JetStreamContext, pool: asyncpg.Pool, topo: topology.Topology) -> None:
    """Commands, console lines and audit records come in bursts: one SQL statement per batch."""

    async def insert_starts(cmds: list[ScanCommand]) -> None:
        starts = [c for c in cmds if isinstance(c, StartScan)]
        if starts:
            async with pool.acquire() as conn:
                await store.insert_scans(conn, starts)

    async def insert_lines(items: list[OutputMessage]) -> None:
        lines = [line for item in items for line in lines_of(item)]
        if lines:
            async with pool.acquire() as conn:
                await outputstore.insert_output(conn, lines)

    async def insert_audit(records: list[AuditRecord]) -> None:
        async with pool.acquire() as conn:
            await auditstore.insert(conn, records)

    await asyncio.gather(
        consume_batches(js, topo.consumer("ingest-scan-commands"), _commands.decode, insert_starts),
        consume_batches(js, topo.consumer("ingest-output"), _output.decode, insert_lines),
        consume_batches(js, topo.consumer("ingest-audit"), _audit.decode, insert_audit),
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    pool = await database.connect_pool(settings.database_url)
    broker = bus.make_broker(settings, "ingest")
    topo = topology.load()
    nc = await bus.connect(settings, "ingest")
    build(broker, pool, topo, nc.jetstream())
    sweeper: asyncio.Task[None] | None = None
    bursts: asyncio.Task[None] | None = None
    expiry: asyncio.Task[None] | None = None
    try:
        await broker.start()
        bursts = asyncio.create_task(consume_bursts(nc.jetstream(), pool, topo))
        expiry = asyncio.create_task(expire_accepted_risks(pool, 5.0))
        service = await bus.register(nc, "ingest", "Projects scans, findings and output.")
        backlog.start(nc, "ingest", stop)
        sweeper = asyncio.create_task(
            watch_liveness(
                pool,
                nc,
                heartbeat_timeout=settings.heartbeat_timeout,
                launch_timeout=settings.launch_timeout,
                interval=min(5.0, settings.heartbeat_timeout / 3),
                max_attempts=settings.max_attempts,
            )
        )
        await stop.wait()
        await service.stop()
    finally:
        for task in (sweeper, bursts, expiry):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await broker.stop()
        await nc.drain()
        await pool.close()
