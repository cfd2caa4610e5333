"""The launcher role: one job per start command, and the scan's lifecycle events.

Before starting a job it creates the scan's key in the `launches` bucket, which succeeds
only once: a redelivered or replayed start command finds the key and is acknowledged
without a second job. Terminal events carry the job's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import msgspec
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts import subjects, wire
from contracts.scans import CancelScan, ScanCommand, ScanEvent, ScanStatus, StartScan
from contracts.settings import Settings
from handlers import bus, topology
from handlers.delivery import durable_subscriber, settle
from handlers.launcher.lifecycle import Stop, outcome
from handlers.launcher.local import LocalExecutor

log = logging.getLogger(__name__)

_commands = msgspec.json.Decoder(ScanCommand)


async def publish_event(
    js: JetStreamContext,
    scan_id: str,
    status: ScanStatus,
    *,
    exit_code: int | None = None,
    reason: str = "",
) -> bool:
    """Publish a lifecycle event; return False when JetStream says it was a duplicate."""
    event = ScanEvent(
        scan_id=scan_id, status=status, at=datetime.now(UTC), exit_code=exit_code, reason=reason
    )
    ack = await js.publish(
        subjects.scan_event(scan_id, status.value),
        wire.encode(event),
        headers={"Nats-Msg-Id": subjects.msg_id("scan", scan_id, status.value)},
        timeout=5,
    )
    return not ack.duplicate


class Launcher:
    def __init__(self, js: JetStreamContext, launches: KeyValue, settings: Settings) -> None:
        self.js = js
        # Create-only keys: the durable guard against running one scan twice.
        self.launches = launches
        # The job gives its scanner 5 s after SIGTERM; give the job longer than that.
        self.executor = LocalExecutor(
            settings.nats_url,
            self.on_exit,
            environ=settings.passthrough,
            grace=10.0,
            programs=settings.programs,
            scope=settings.scope,
        )
        self._stopping: set[asyncio.Task[bool]] = set()

    async def on_exit(self, cmd: StartScan, returncode: int, stopped: Stop | None) -> None:
        status, reason = outcome(returncode, stopped, cmd.deadline_seconds)
        for attempt in range(1, 6):
            try:
                await publish_event(
                    self.js, cmd.scan_id, status, exit_code=returncode, reason=reason
                )
                return
            except Exception:
                # Liveness fails the scan as lost if this never gets through.
                log.exception(
                    "scan %s: publishing %s failed (attempt %d)", cmd.scan_id, status, attempt
                )
                await asyncio.sleep(attempt)

    async def start(self, cmd: StartScan) -> None:
        if self.executor.running(cmd.scan_id):
            return
        try:
            await self.launches.create(cmd.scan_id, wire.encode(cmd.requested_at))
        except KeyWrongLastSequenceError:
            log.info("scan %s was launched before; not starting it again", cmd.scan_id)
            return
        await publish_event(self.js, cmd.scan_id, ScanStatus.LAUNCHING)
        try:
            await self.executor.start(cmd)
        except OSError as exc:
            await publish_event(
                self.js, cmd.scan_id, ScanStatus.FAILED, reason=f"the job could not start: {exc}"
            )

    async def cancel(self, cmd: CancelScan) -> None:
        if self.executor.running(cmd.scan_id):
            # Stopping takes up to the grace period; the next command need not wait for it.
            task = asyncio.create_task(self.executor.stop(cmd.scan_id, Stop.CANCELLED))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
            return
        # Not running here: still queued, or already over (then ingest ignores the event).
        # Taking its `launches` key makes a start that is still to come a no-op.
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self.launches.create(cmd.scan_id, b"cancelled")
        await publish_event(
            self.js, cmd.scan_id, ScanStatus.CANCELLED, reason="cancelled on request"
        )


def build(broker: NatsBroker, launcher: Launcher, topo: topology.Topology) -> None:
    spec = topo.consumer("launcher-scan-commands")

    # One message at a time, in stream order: a cancel is never handled before its start.
    @durable_subscriber(broker, topo, spec.durable, batch_size=1)
    async def on_command(msg: NatsMessage) -> None:
        body = msg.body

        async def work() -> None:
            match _commands.decode(body):
                case StartScan() as start:
                    await launcher.start(start)
                case CancelScan() as cancel:
                    await launcher.cancel(cancel)

        await settle(msg, spec, work)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    nc = await bus.connect(settings, "launcher")
    broker = bus.make_broker(settings, "launcher")
    js = nc.jetstream()
    launcher = Launcher(js, await js.key_value("launches"), settings)
    build(broker, launcher, topology.load())
    try:
        await broker.start()
        service = await bus.register(nc, "launcher", "Starts one job per scan command.")
        await stop.wait()
        await service.stop()
    finally:
        await broker.stop()
        await launcher.executor.shutdown()
        await nc.drain()
