"""The launcher role: admits scans (`queue`, `admission`), one job per admitted scan, and
the scan's lifecycle events.

A start command puts its scan in the admission queue on the bus; the dispatcher launches it
when a slot is free. Before starting a job it creates the attempt's key in the `launches`
bucket, which succeeds only once: a replayed start finds the key and starts nothing. Terminal
events carry the job's outcome; the launcher's own consumer of scan events frees slots and
puts a scan whose job jetscan lost back in the queue for its next attempt (`RETRY`). Jobs run
on an executor (`executor.Executor`): a local process, or a Kubernetes Job.

When the executor cannot be asked right now (`LaunchUnavailable`: the Kubernetes API
answers 5xx or not at all), the scan goes back to the queue and the dispatcher pauses (1 s,
5 s, 15 s...); after `UNAVAILABLE_TRIES` such answers the scan fails, so none waits forever.
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
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from contracts import subjects, tracing, wire
from contracts.output import OutputMessage
from contracts.scans import (
    RETRY,
    CancelScan,
    ScanCommand,
    ScanEvent,
    ScanStatus,
    StartScan,
)
from contracts.settings import Settings
from handlers import backlog, bus, topology
from handlers import metrics as m
from handlers.admission import BUCKET, Waiting
from handlers.delivery import durable_subscriber, one_by_one, settle
from handlers.launcher import sandbox
from handlers.launcher.catalog import Catalog
from handlers.launcher.events import guard_key, last_seq, publish_event
from handlers.launcher.executor import Ending, Executor, LaunchRefused, LaunchUnavailable
from handlers.launcher.lifecycle import Stop, infrastructure_loss, outcome
from handlers.launcher.local import LocalExecutor
from handlers.launcher.queue import AdmissionQueue
from handlers.natsauth import Signer

log = logging.getLogger(__name__)

_commands = msgspec.json.Decoder(ScanCommand)
_events = msgspec.json.Decoder(ScanEvent)
_start = msgspec.json.Decoder(StartScan)
_output = msgspec.json.Decoder(OutputMessage)

# Answers of an executor that cannot be asked right now before the scan is failed, and the
# dispatcher's pause after each (the last repeats).
UNAVAILABLE_TRIES = 8
UNAVAILABLE_PAUSES = (1.0, 5.0, 15.0, 30.0, 60.0)


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
        admission: KeyValue | None = None,
    ) -> None:
        self.js = js
        # Create-only keys: the durable guard against running one attempt of a scan twice.
        self.launches = launches
        self.max_attempts = settings.max_attempts
        self.executor = make_executor(settings, self, catalog)
        self.queue = (
            AdmissionQueue(
                admission,
                self.launch,
                max_running=settings.max_running,
                per_target=settings.max_per_target,
                js=js,
            )
            if admission is not None
            else None
        )
        # Jobs started here, by scan and attempt: their tool and start time, for metrics.
        self._started: dict[tuple[str, int], tuple[str, float]] = {}
        self._unavailable: dict[str, int] = {}

    def _ended(self, ending: Ending, status: ScanStatus) -> int:
        """The attempt `ending` belongs to; a job started here is counted out once."""
        attempt = max(ending.attempt, 1)
        started = self._started.pop((ending.scan_id, attempt), None)
        if started is None:
            return attempt
        m.RUNNING_JOBS.dec()
        m.JOB_DURATION.labels(started[0], status.value).observe(time.monotonic() - started[1])
        return attempt

    async def _launched(self, scan_id: str, attempt: int) -> bool:
        """Whether the scan's `attempt` was launched (its `launches` key exists)."""
        try:
            await self.launches.get(guard_key(scan_id, attempt))
        except KeyNotFoundError:
            return False
        return True

    async def _superseded(self, scan_id: str, attempt: int) -> bool:
        """Whether a later attempt of the scan was launched: an end of this one is old news
        (a replica, or a launcher restarted since, reporting a Job that was replaced)."""
        try:
            return await self._launched(scan_id, attempt + 1)
        except Exception:
            log.warning("scan %s: could not tell whether attempt %d was replaced", scan_id, attempt)
            return False

    async def on_exit(self, ending: Ending) -> None:
        status, reason = outcome(
            ending.returncode,
            ending.stopped,
            ending.deadline_seconds,
            cause=ending.cause,
            detail=ending.detail,
        )
        attempt = self._ended(ending, status)
        if ending.stopped is Stop.SUPERSEDED:
            return
        if await self._superseded(ending.scan_id, attempt):
            log.info("scan %s: the end of attempt %d is not the scan's", ending.scan_id, attempt)
            return
        lost = infrastructure_loss(
            ending.returncode, ending.stopped, cause=ending.cause, detail=ending.detail
        )
        if lost and attempt < self.max_attempts:
            # Back to the queue: the launcher's event consumer enqueues the next attempt.
            status, reason, attempt = ScanStatus.QUEUED, f"{RETRY}: {reason}", attempt + 1
        elif lost and attempt > 1:
            reason = f"{reason} (attempt {attempt} of {self.max_attempts})"
        for n in range(1, 6):
            try:
                await publish_event(
                    self.js,
                    ending.scan_id,
                    status,
                    exit_code=None if status is ScanStatus.QUEUED else ending.returncode,
                    reason=reason,
                    attempt=attempt,
                )
                return
            except Exception:
                # Liveness fails the scan as lost if this never gets through.
                log.exception("scan %s: publishing %s failed (try %d)", ending.scan_id, status, n)
                await asyncio.sleep(n)

    async def start(self, cmd: StartScan, *, trace: str = "") -> str:
        """Queue `cmd`'s scan; return the command's outcome for `jetscan_commands_total`."""
        if self.executor.running(cmd.scan_id):
            return "duplicate"
        try:
            await self.launches.get(cmd.scan_id)
        except KeyNotFoundError:
            pass
        else:
            log.info("scan %s was launched before; not starting it again", cmd.scan_id)
            return "duplicate"
        if self.queue is None:
            return await self.launch(Waiting(cmd=cmd, trace=trace))
        return "queued" if await self.queue.enqueue(Waiting(cmd=cmd, trace=trace)) else "duplicate"

    async def launch(self, w: Waiting) -> str:
        """Start the job of an admitted scan (the dispatcher holds its slot)."""
        cmd = w.cmd
        if self.executor.running(cmd.scan_id):
            return "launched"
        try:
            await self.launches.create(
                guard_key(cmd.scan_id, w.attempt), wire.encode(cmd.requested_at)
            )
        except KeyWrongLastSequenceError:
            log.info("scan %s attempt %d was launched or cancelled before", cmd.scan_id, w.attempt)
            return "duplicate"
        with tracing.span(
            "launch", {tracing.HEADER: w.trace} if w.trace else None, scan=cmd.scan_id
        ):
            return await self._launch(w)

    async def _console_end(self, scan_id: str) -> int:
        """The last console `seq` an earlier attempt of the scan got onto the bus."""
        try:
            raw = await self.js.get_last_msg("OUTPUT", subjects.scan_output(scan_id))
        except NotFoundError:
            return 0
        try:
            return last_seq(_output.decode(raw.data or b""))
        except wire.UNDECODABLE:
            return 0

    async def _launch(self, w: Waiting) -> str:
        cmd = w.cmd
        after = await self._console_end(cmd.scan_id) if w.attempt > 1 else 0
        try:
            await self.executor.start(cmd, attempt=w.attempt, console_after=after)
        except LaunchUnavailable as exc:
            m.LAUNCHES.labels(cmd.tool, "unavailable").inc()
            tries = self._unavailable[cmd.scan_id] = self._unavailable.get(cmd.scan_id, 0) + 1
            if tries >= UNAVAILABLE_TRIES or self.queue is None:
                self._unavailable.pop(cmd.scan_id, None)
                reason = f"the job could not be started: {exc}"
                await publish_event(self.js, cmd.scan_id, ScanStatus.FAILED, reason=reason)
                return "failed"
            # Back in the queue: a Job created by a try whose answer was lost is then found
            # by its name.
            await self.launches.delete(guard_key(cmd.scan_id, w.attempt))
            await self.queue.enqueue(w)
            self.queue.pause(UNAVAILABLE_PAUSES[min(tries, len(UNAVAILABLE_PAUSES)) - 1])
            return "unavailable"
        except LaunchRefused as exc:
            m.LAUNCHES.labels(cmd.tool, "refused").inc()
            await publish_event(self.js, cmd.scan_id, ScanStatus.FAILED, reason=str(exc))
            return "refused"
        self._unavailable.pop(cmd.scan_id, None)
        m.LAUNCHES.labels(cmd.tool, "started").inc()
        m.RUNNING_JOBS.inc()
        self._started[cmd.scan_id, w.attempt] = (cmd.tool, time.monotonic())
        m.QUEUE_WAIT.observe(max(0.0, (datetime.now(UTC) - cmd.requested_at).total_seconds()))
        await publish_event(self.js, cmd.scan_id, ScanStatus.LAUNCHING, attempt=w.attempt)
        return "launched"

    async def cancel(self, cmd: CancelScan) -> str:
        # Stopping only begins here (a SIGTERM, a Job deletion): the job's end is reported
        # by the executor, and the next command does not wait for it.
        if self.executor.running(cmd.scan_id) and await self.executor.stop(
            cmd.scan_id, Stop.CANCELLED
        ):
            return "stopping"
        # Still waiting for a slot: out of the queue, and never launched.
        waiting = await self.queue.claim(cmd.scan_id) if self.queue is not None else None
        try:
            # Taking its `launches` key makes a start that is still to come a no-op.
            await self.launches.create(cmd.scan_id, b"cancelled")
        except KeyWrongLastSequenceError:
            # Launched already, perhaps by another launcher whose Job this one has not seen
            # yet: a Kubernetes Job is found by its name. A local job elsewhere is not.
            if waiting is None and await self.executor.stop(cmd.scan_id, Stop.CANCELLED):
                return "stopping"
        await publish_event(
            self.js, cmd.scan_id, ScanStatus.CANCELLED, reason="cancelled on request"
        )
        return "cancelled"

    async def on_event(self, event: ScanEvent) -> str:
        """A scan event, seen by the launcher: slots and retries follow the scan's life."""
        if self.queue is None:
            return "ignored"
        scan_id = event.scan_id
        if event.status is ScanStatus.QUEUED and event.attempt > 1:
            # Its job was lost (here, or silent as liveness saw it): the next attempt waits.
            # The lost attempt's job must not run on (a silent one may be alive, a Kubernetes
            # Job started by another replica too); a later attempt's is left alone (a
            # redelivered event).
            await self.executor.stop(scan_id, Stop.SUPERSEDED, attempt=event.attempt - 1)
            if await self._launched(scan_id, event.attempt):
                return "duplicate"  # the event is old news
            try:
                raw = await self.js.get_last_msg("COMMANDS", subjects.scan_start(scan_id))
            except NotFoundError:
                why = event.reason.removeprefix(f"{RETRY}: ")
                reason = f"{why}; its start command is gone, so it cannot run again"
                await publish_event(self.js, scan_id, ScanStatus.FAILED, reason=reason)
                return "failed"
            cmd = _start.decode(raw.data or b"")
            # Queued before its old slot is freed, so the slot cannot go to a younger scan.
            await self.queue.enqueue(Waiting(cmd=cmd, attempt=event.attempt), retry=True)
            await self.queue.release(scan_id, event.attempt - 1)
            return "requeued"
        if not event.status.terminal:
            return "ignored"
        if event.status is not ScanStatus.SUCCEEDED and self.executor.running(scan_id):
            # Ended without its job (a silent job failed by liveness, a cancel that raced
            # the launch): the job must not run on.
            await self.executor.stop(scan_id, Stop.SUPERSEDED)
        await self.queue.claim(scan_id)
        return "released" if await self.queue.release(scan_id) else "ignored"


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
                    # The launch, later, continues the command's trace.
                    done = await launcher.start(start, trace=tracing.traceparent())
                case CancelScan() as cancel:
                    kind = "cancel"
                    tracing.mark_scan(cancel.scan_id)
                    done = await launcher.cancel(cancel)
            m.COMMANDS.labels(kind, done).inc()

        with tracing.span("command", msg.headers, kind=tracing.CONSUMER):
            outcome = await settle(msg, spec, work)
            if outcome != "acked":
                m.COMMANDS.labels(kind, outcome).inc()

    # In stream order: a scan's retry is queued before a later cancel or end takes it out.
    @one_by_one(broker, topo, "launcher-scan-events", span="scan event")
    async def on_event(msg: NatsMessage) -> None:
        event = _events.decode(msg.body)
        tracing.mark_scan(event.scan_id)
        done = await launcher.on_event(event)
        if done != "ignored":
            log.info("scan %s: %s (%s)", event.scan_id, done, event.status.value)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    nc = await bus.connect(settings, "launcher")
    broker = bus.make_broker(settings, "launcher")
    js = nc.jetstream()
    launcher = Launcher(
        js,
        await js.key_value("launches"),
        settings,
        Catalog(nc),
        admission=await js.key_value(BUCKET),
    )
    build(broker, launcher, topology.load())
    try:
        await launcher.executor.open()
        if launcher.queue is not None:
            await launcher.queue.open()
        await broker.start()
        service = await bus.register(nc, "launcher", "Starts one job per scan command.")
        backlog.start(nc, "launcher", stop)
        await stop.wait()
        await service.stop()
    finally:
        await broker.stop()
        if launcher.queue is not None:
            await launcher.queue.close()
        await launcher.executor.shutdown()
        await nc.drain()
