"""The reports role: `cmd.report.<id>.generate` → freeze a snapshot from PostgreSQL, render it
in a worker process, store snapshot and file in the object store, record the outcome and
announce it on `evt.report.<id>.<ready|failed>`.

This role writes the report rows itself (ingest's `ingest-report-events` consumer stays
unused): it alone knows when a report was picked up, and a row settled in the same place
as the files are stored can never say ready before they are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import multiprocessing
from datetime import UTC, datetime

import asyncpg
import msgspec
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext

from contracts import subjects, tracing, wire
from contracts.reports import (
    FILES,
    SNAPSHOT_FILE,
    GenerateReport,
    ReportEvent,
    ReportStatus,
    freeze,
    object_name,
)
from contracts.settings import Settings
from handlers import bus, database, metrics, reportstore, topology
from handlers.delivery import delivered, one_by_one
from handlers.reports import snapshot
from handlers.reports.render import render_stored

log = logging.getLogger(__name__)

ARTIFACTS = "artifacts"
RENDERERS = 2
_commands = msgspec.json.Decoder(GenerateReport)


class Reports:
    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        renderers: concurrent.futures.Executor,
    ) -> None:
        self.pool = pool
        self.js = js
        self.renderers = renderers

    async def _announce(
        self, event: ReportEvent, scan_ids: tuple[str, ...], domain: str = ""
    ) -> None:
        async with self.pool.acquire() as conn:
            await reportstore.settle(conn, event, scan_ids, domain)
        state = event.status.value
        await self.js.publish(
            subjects.report_event(event.report_id, state),
            wire.encode(event),
            headers=tracing.inject(
                {"Nats-Msg-Id": subjects.msg_id("report", event.report_id, state)}
            ),
        )
        log.info("report %s %s %s", event.report_id, state, event.error)

    async def fail(self, cmd: GenerateReport, reason: str, scan_ids: tuple[str, ...] = ()) -> None:
        event = ReportEvent(
            report_id=cmd.report_id,
            status=ReportStatus.FAILED,
            at=datetime.now(UTC),
            file=FILES[cmd.format][0],
            error=reason,
        )
        await self._announce(event, scan_ids or cmd.scan_ids)

    async def generate(self, cmd: GenerateReport) -> None:
        async with self.pool.acquire() as conn:
            if await reportstore.insert_pending(conn, cmd) is not ReportStatus.PENDING:
                return  # a redelivered command of a report already settled
            try:
                snap = await snapshot.take(conn, cmd, datetime.now(UTC))
            except snapshot.SubjectError as exc:
                await self.fail(cmd, str(exc))
                return
        data, frozen = freeze(snap)
        scan_ids = tuple(s.id for s in snap.scans)
        domains = {s.domain for s in snap.scans}
        domain = domains.pop() if len(domains) == 1 else ""
        store = await self.js.object_store(ARTIFACTS)
        await store.put(object_name(cmd.report_id, SNAPSHOT_FILE), data)
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            # A process: typst holds the CPU for seconds, and this loop keeps acking,
            # answering pings and taking other reports meanwhile.
            with tracing.span("render"):
                rendered = await loop.run_in_executor(
                    self.renderers, render_stored, cmd.format.value, data
                )
            metrics.REPORT_RENDER.labels(cmd.format.value).observe(loop.time() - began)
        except concurrent.futures.BrokenExecutor:
            raise  # the worker died (killed, out of memory): retried in a fresh one
        except Exception as exc:
            log.exception("report %s: rendering failed", cmd.report_id)
            await self.fail(cmd, f"rendering {cmd.format.value} failed: {exc}", scan_ids)
            return
        file = FILES[cmd.format][0]
        await store.put(object_name(cmd.report_id, file), rendered)
        event = ReportEvent(
            report_id=cmd.report_id,
            status=ReportStatus.READY,
            at=datetime.now(UTC),
            file=file,
            size_bytes=len(rendered),
            sha256=hashlib.sha256(rendered).hexdigest(),
            snapshot_sha256=frozen.sha256,
        )
        await self._announce(event, scan_ids, domain)


def _executor() -> concurrent.futures.ProcessPoolExecutor:
    # spawn: a fork of this process would copy its event loop, sockets and threads.
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=RENDERERS, mp_context=multiprocessing.get_context("spawn")
    )


def build(broker: NatsBroker, topo: topology.Topology, reports: Reports) -> None:
    spec = topo.consumer("reports-commands")

    # Two at a time: a small report is not held up behind a large PDF.
    @one_by_one(broker, topo, spec.durable, max_workers=RENDERERS)
    async def on_command(msg: NatsMessage) -> None:
        cmd = _commands.decode(msg.body)
        try:
            # The report's trace continues the GenerateReport RPC's (its command's header).
            with tracing.span("report", msg.headers, kind=tracing.CONSUMER):
                await reports.generate(cmd)
        except Exception as exc:
            if isinstance(exc, concurrent.futures.BrokenExecutor):
                broken, reports.renderers = reports.renderers, _executor()
                broken.shutdown(wait=False, cancel_futures=True)
            if delivered(msg) < spec.max_deliver:
                raise
            # The last attempt: the report ends failed, never pending forever.
            await reports.fail(cmd, f"gave up after {spec.max_deliver} attempts: {exc!r}")


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    pool = await database.connect_pool(settings.database_url)
    broker = bus.make_broker(settings, "reports")
    topo = topology.load()
    nc = await bus.connect(settings, "reports")
    executor = _executor()
    reports = Reports(pool, nc.jetstream(), executor)
    build(broker, topo, reports)
    try:
        await broker.start()
        service = await bus.register(
            nc, "reports", "Renders findings to PDF, JSON, SARIF, DefectDojo and CSV reports."
        )
        await stop.wait()
        await service.stop()
    finally:
        await broker.stop()
        reports.renderers.shutdown(wait=False, cancel_futures=True)
        await nc.drain()
        await pool.close()
