"""The launcher role: one job per start command, and the scan's lifecycle events.

Before starting a job it creates the scan's key in the `launches` bucket, which succeeds
only once: a redelivered or replayed start command finds the key and is acknowledged
without a second job. Terminal events carry the job's outcome. Jobs run on an executor
(`executor.Executor`): a local process, or a Kubernetes Job (`JETSCAN_EXECUTOR`).

When the executor cannot be asked right now (`LaunchUnavailable`: the Kubernetes API
answers 5xx or not at all), the launcher gives the scan's key back and naks the command,
which comes back after the consumer's next `nak_delay`; the scan stays QUEUED meanwhile.
On the last delivery it fails the scan instead, so no scan waits forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import msgspec
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts import subjects, tracing, wire
from contracts.scans import CancelScan, ScanCommand, ScanEvent, ScanStatus, StartScan
from contracts.settings import Settings
from handlers import backlog, bus, topology
from handlers import metrics as m
from handlers.delivery import delivered, durable_subscriber, settle
from handlers.launcher import sandbox
from handlers.launcher.catalog import Catalog
from handlers.launcher.executor import Ending, Executor, LaunchRefused, LaunchUnavailable
from handlers.launcher.lifecycle import Stop, outcome
from handlers.launcher.local import LocalExecutor
from handlers.natsauth import Signer

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
        headers=tracing.inject({"Nats-Msg-Id": subjects.msg_id("scan", scan_id, status.value)}),
        timeout=5,
    )
    return not ack.duplicate


def make_executor(settings: Settings, launcher: Launcher, catalog: Catalog | None) -> Executor:
    if settings.executor == "kubernetes":
        # Imported only here: the local executor never loads kubernetes-asyncio.
        from handlers.launcher.kubernetes import KubernetesExecutor

        return KubernetesExecutor(settings, launcher.on_exit, catalog)
    # The job gives its scanner 5 s after SIGTERM; give the job longer than that.
    return LocalExecutor(
        settings.nats_url,
        launcher.on_exit,
        environ=settings.passthrough,
        grace=10.0,
        programs=settings.programs,
        scope=settings.scope,
        console_max_bytes=settings.console_max_bytes,
        otlp_endpoint=settings.otlp_endpoint,
        log_format=settings.log_format,
        signer=Signer.load(settings.nats_job_signer) if settings.nats_job_signer else None,
        sandbox=(
            sandbox.resolve(settings.job_user, settings.job_memory_mb)
            if settings.job_user
            else None
        ),
    )


class Launcher:
    def __init__(
        self,
        js: JetStreamContext,
        launches: KeyValue,
        settings: Settings,
        catalog: Catalog | None = None,
    ) -> None:
        self.js = js
        # Create-only keys: the durable guard against running one scan twice.
        self.launches = launches
        self.executor = make_executor(settings, self, catalog)
        # Jobs started here: their tool and start time, for the job metrics.
        self._started: dict[str, tuple[str, float]] = {}

    def _ended(self, scan_id: str, status: ScanStatus) -> None:
        started = self._started.pop(scan_id, None)
        if started is not None:
            m.RUNNING_JOBS.dec()
            m.JOB_DURATION.labels(started[0], status.value).observe(time.monotonic() - started[1])

    async def on_exit(self, ending: Ending) -> None:
        status, reason = outcome(
            ending.returncode,
            ending.stopped,
            ending.deadline_seconds,
            cause=ending.cause,
            detail=ending.detail,
        )
        self._ended(ending.scan_id, status)
        for attempt in range(1, 6):
            try:
                await publish_event(
                    self.js, ending.scan_id, status, exit_code=ending.returncode, reason=reason
                )
                return
            except Exception:
                # Liveness fails the scan as lost if this never gets through.
                log.exception(
                    "scan %s: publishing %s failed (attempt %d)", ending.scan_id, status, attempt
                )
                await asyncio.sleep(attempt)

    async def start(self, cmd: StartScan, *, last_attempt: bool = False) -> str:
        """Start `cmd`'s job; return the command's outcome for `jetscan_commands_total`."""
        if self.executor.running(cmd.scan_id):
            return "duplicate"
        try:
            await self.launches.create(cmd.scan_id, wire.encode(cmd.requested_at))
        except KeyWrongLastSequenceError:
            log.info("scan %s was launched before; not starting it again", cmd.scan_id)
            return "duplicate"
        with tracing.span("launch", scan=cmd.scan_id):
            return await self._launch(cmd, last_attempt)

    async def _launch(self, cmd: StartScan, last_attempt: bool) -> str:
        try:
            await self.executor.start(cmd)
        except LaunchUnavailable as exc:
            m.LAUNCHES.labels(cmd.tool, "unavailable").inc()
            if last_attempt:
                reason = f"the job could not be started: {exc}"
                await publish_event(self.js, cmd.scan_id, ScanStatus.FAILED, reason=reason)
                return "failed"
            # The redelivered command must try again; a Job that was created after all is
            # then found by its name.
            await self.launches.delete(cmd.scan_id)
            raise
        except LaunchRefused as exc:
            m.LAUNCHES.labels(cmd.tool, "refused").inc()
            await publish_event(self.js, cmd.scan_id, ScanStatus.FAILED, reason=str(exc))
            return "refused"
        m.LAUNCHES.labels(cmd.tool, "started").inc()
        m.RUNNING_JOBS.inc()
        self._started[cmd.scan_id] = (cmd.tool, time.monotonic())
        m.QUEUE_WAIT.observe(max(0.0, (datetime.now(UTC) - cmd.requested_at).total_seconds()))
        await publish_event(self.js, cmd.scan_id, ScanStatus.LAUNCHING)
        return "launched"

    async def cancel(self, cmd: CancelScan) -> str:
        # Stopping only begins here (a SIGTERM, a Job deletion): the job's end is reported
        # by the executor, and the next command does not wait for it.
        if self.executor.running(cmd.scan_id) and await self.executor.stop(
            cmd.scan_id, Stop.CANCELLED
        ):
            return "stopping"
        # Not running here: still queued, or already over (then ingest ignores the event).
        # Taking its `launches` key makes a start that is still to come a no-op.
        try:
            await self.launches.create(cmd.scan_id, b"cancelled")
        except KeyWrongLastSequenceError:
            # Launched already, perhaps by another launcher whose Job this one has not seen
            # yet: a Kubernetes Job is found by its name. A local job elsewhere is not.
            if await self.executor.stop(cmd.scan_id, Stop.CANCELLED):
                return "stopping"
        await publish_event(
            self.js, cmd.scan_id, ScanStatus.CANCELLED, reason="cancelled on request"
        )
        return "cancelled"


def build(broker: NatsBroker, launcher: Launcher, topo: topology.Topology) -> None:
    spec = topo.consumer("launcher-scan-commands")

    # One message at a time, in stream order: a cancel is never handled before its start.
    @durable_subscriber(broker, topo, spec.durable, batch_size=1)
    async def on_command(msg: NatsMessage) -> None:
        body = msg.body
        kind = "unknown"

        async def work() -> None:
            nonlocal kind
            match _commands.decode(body):
                case StartScan() as start:
                    kind = "start"
                    tracing.mark_scan(start.scan_id)
                    done = await launcher.start(
                        start, last_attempt=delivered(msg) >= spec.max_deliver
                    )
                case CancelScan() as cancel:
                    kind = "cancel"
                    tracing.mark_scan(cancel.scan_id)
                    done = await launcher.cancel(cancel)
            m.COMMANDS.labels(kind, done).inc()

        with tracing.span("command", msg.headers, kind=tracing.CONSUMER):
            outcome = await settle(msg, spec, work)
            if outcome != "acked":
                m.COMMANDS.labels(kind, outcome).inc()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    nc = await bus.connect(settings, "launcher")
    broker = bus.make_broker(settings, "launcher")
    js = nc.jetstream()
    launcher = Launcher(js, await js.key_value("launches"), settings, Catalog(nc))
    build(broker, launcher, topology.load())
    try:
        await launcher.executor.open()
        await broker.start()
        service = await bus.register(nc, "launcher", "Starts one job per scan command.")
        backlog.start(nc, "launcher", stop)
        await stop.wait()
        await service.stop()
    finally:
        await broker.stop()
        await launcher.executor.shutdown()
        await nc.drain()
