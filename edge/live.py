"""A scan's live console for one viewer: replay from a line, then follow, then the end.

One `Feed` per viewer (a WebSocket or a WatchScan call) yields `OutputLine`s with `seq`
contiguous from `after_seq + 1` and a `ScanView` on every lifecycle change; the last frame
is the terminal `ScanView`, sent after the last line.

Where the frames come from:
- Lines: a `Reader` (an unacknowledged pull consumer) on `scan.output.<id>` from the
  stream's first retained message. It replays, then follows, and recreates itself after a
  reconnect from the stream sequence it reached. Lines can arrive out of order (a worker's
  resend lands after later lines), so a `Sequencer` holds early lines and drops duplicates.
- Lines the stream no longer holds (OUTPUT expired the start) come from the durable copy
  ingest keeps in PostgreSQL, through `query.output.list`: the edge never touches the
  database. A gap that neither source fills within `gap_timeout` is a line the worker never
  got onto the bus; the feed moves past it rather than stall the console forever.
- Status: a second `Reader` on `evt.scan.<id>.*`; each event that moves the scan
  forward is answered with the scan as `query.scan.get` returns it once ingest has projected
  the event (or, after `settle_timeout`, the view with the event applied here).

The end: once the scan is terminal, the feed waits for the line before `EndOfOutput`; a job
killed before it could send `EndOfOutput` ends at the last line the stream or the durable
copy has.

Bounded: the readers' messages go through a queue of `max_buffered` frames; while it is
full they stop pulling (at most `PULL_BATCH` more are in flight), and the backlog stays in
the stream. A slow viewer slows nobody but itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import msgspec
import nats.errors
from grpclib import GRPCError
from grpclib.const import Status
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from contracts import subjects, wire
from contracts.output import EndOfOutput, ListOutput, OutputLine, OutputMessage, OutputPage
from contracts.scans import GetScan, ScanEvent, ScanView, advance
from edge.bus import Bus
from edge.console import Console, applied

log = logging.getLogger(__name__)

Frame = OutputLine | ScanView

OUTPUT_STREAM: Final = "OUTPUT"
EVENTS_STREAM: Final = "EVENTS"
# Line numbers are PostgreSQL bigints: an `after_seq` past this can name no line.
MAX_SEQ = 2**63 - 1
MAX_BUFFERED = 4096
# Messages a viewer's consumer may have in flight to the edge: the edge's whole intake is
# bounded by viewers x PULL_BATCH, so a burst of replays never makes it a slow consumer.
PULL_BATCH = 256
# ...and about this many bytes: the batch asked for is PULL_BYTES over the mean size of the
# messages so far, so a viewer replaying batches of lines holds at most a few hundred kB of
# the edge's connection (the server cuts a connection 64 MB behind as a slow consumer).
# Not the pull's own `max_bytes`: with it set, nats-server 2.15 held back live messages
# (p50 latency 3 ms -> 270 ms at 2,000 lines/s in `bench stream`).
PULL_BYTES = 256 * 1024
# A pull waits this long for messages; the server sends a heartbeat every second meanwhile,
# and three seconds of silence mean the consumer or the connection is gone.
PULL_EXPIRES = 5.0
HEARTBEAT = 1.0
SILENCE = 3.0

_output = msgspec.json.Decoder(OutputMessage)
_event = msgspec.json.Decoder(ScanEvent)


class _Live:
    """What the two consumers delivered, in one bounded queue."""

    def __init__(self, max_buffered: int) -> None:
        self.queue: asyncio.Queue[tuple[int, OutputMessage] | ScanEvent | ScanView] = asyncio.Queue(
            max_buffered
        )
        self.closed = False

    async def put(self, item: tuple[int, OutputMessage] | ScanEvent | ScanView) -> None:
        """Wait for room, but not past the feed's end: nothing reads the queue then.

        Python 3.11's `wait_for` can swallow a cancellation (fixed in 3.12), and nats-py uses
        it, so the producers of this queue also stop on flags, not on cancellation alone.
        """
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.put(item), 1.0)
                return

    async def on_output(self, stream_seq: int, data: bytes) -> None:
        try:
            item = _output.decode(data)
        except wire.UNDECODABLE:
            log.warning("ignoring a malformed console message at %d", stream_seq)
            return
        await self.put((stream_seq, item))

    async def on_event(self, stream_seq: int, data: bytes) -> None:
        try:
            await self.put(_event.decode(data))
        except wire.UNDECODABLE:
            log.warning("ignoring a malformed scan event at %d", stream_seq)


class _Lost(Exception):
    """The consumer stopped answering: recreate it after the last message seen."""


class Reader:
    """Every message of `subject` in `stream`, in order, from the first retained one.

    An ephemeral, unacknowledged pull consumer, kept at most `PULL_BATCH` messages ahead of
    `deliver` (which may wait: then no more is pulled, and the backlog stays in the stream).
    A push consumer's flow control would let each viewer's consumer have megabytes in flight,
    enough for a burst of replays to make the edge's connection a slow consumer. When the
    consumer goes silent (a server restart, a reconnect) it is recreated from the stream
    sequence after the last message delivered, so nothing is skipped or repeated.
    """

    def __init__(
        self,
        bus: Bus,
        stream: str,
        subject: str,
        deliver: Callable[[int, bytes], Awaitable[None]],
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.subject = subject
        self.deliver = deliver
        self.last = 0  # stream sequence of the last message delivered
        self.stopped = False  # see `_Live.put`: cancellation alone may be lost

    async def run(self) -> None:
        while not self.stopped:
            try:
                await self._consume()
            except (_Lost, nats.errors.Error, TimeoutError, OSError) as exc:
                log.debug("consumer of %s lost (%r); recreating", self.subject, exc)
                await asyncio.sleep(0.2)

    async def _consume(self) -> None:
        nc = self.bus.nc
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            filter_subject=self.subject,
            inactive_threshold=60.0,
            mem_storage=True,
            num_replicas=1,
        )
        if self.last:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self.last + 1
        else:
            config.deliver_policy = DeliverPolicy.ALL
        info = await self.bus.js.add_consumer(self.stream, config)
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, pending_msgs_limit=4 * PULL_BATCH)
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{info.name}"
        try:
            wanted = 0  # messages asked for and not yet delivered
            batch = 1
            # Until messages show their size, assume full worker batches (32 KiB).
            mean_size = 32 * 1024.0
            while not self.stopped:
                if wanted <= batch // 2:
                    batch = max(1, min(PULL_BATCH, int(PULL_BYTES / mean_size)))
                    await nc.publish(next_subject, _pull_request(batch), reply=inbox)
                    wanted += batch
                try:
                    msg = await sub.next_msg(timeout=SILENCE)
                except nats.errors.TimeoutError:
                    raise _Lost(self.subject) from None
                status = msg.headers.get("Status") if msg.headers else None
                if status is not None:
                    if status in ("404", "408"):  # a pull expired with this much left
                        left = msg.headers.get("Nats-Pending-Messages") if msg.headers else None
                        wanted = max(wanted - int(left or batch), 0)
                    elif status == "409":
                        raise _Lost(f"{self.subject}: {msg.headers}")
                    continue
                mean_size += (len(msg.data) - mean_size) / 8
                wanted -= 1
                self.last = msg.metadata.sequence.stream
                await self.deliver(self.last, msg.data)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.bus.js.delete_consumer(self.stream, info.name), 1.0)


def _pull_request(batch: int) -> bytes:
    return json.dumps(
        {
            "batch": batch,
            "expires": int(PULL_EXPIRES * 1e9),
            "idle_heartbeat": int(HEARTBEAT * 1e9),
        }
    ).encode()


class Feed:
    """The frames of one viewer of one scan; iterate `frames()` once."""

    def __init__(
        self,
        bus: Bus,
        scan_id: str,
        after_seq: int = 0,
        *,
        max_buffered: int = MAX_BUFFERED,
        gap_timeout: float = 30.0,
        settle_timeout: float = 15.0,
    ) -> None:
        self.bus = bus
        self.scan_id = subjects.token(scan_id)
        self.after_seq = after_seq
        self.max_buffered = max_buffered
        self.gap_timeout = gap_timeout
        self.settle_timeout = settle_timeout

    async def view(self) -> ScanView:
        return await self.bus.query(
            subjects.query("scan", "get"), GetScan(id=self.scan_id), ScanView
        )

    async def _stored(self, after_seq: int, limit: int) -> list[OutputLine]:
        page = await self.bus.query(
            subjects.query("output", "list"),
            ListOutput(scan_id=self.scan_id, after_seq=after_seq, limit=limit),
            OutputPage,
        )
        return page.lines

    async def _retained_until(self) -> tuple[int, int | None]:
        """The stream sequence of the scan's newest retained message, and the end seq if
        that message is `EndOfOutput` ((0, None) when the stream holds nothing of it)."""
        try:
            raw = await self.bus.js.get_last_msg(OUTPUT_STREAM, subjects.scan_output(self.scan_id))
        except NotFoundError:
            return 0, None
        try:
            item = _output.decode(raw.data or b"")
        except wire.UNDECODABLE:
            return raw.seq or 0, None
        return raw.seq or 0, item.seq if isinstance(item, EndOfOutput) else None

    async def frames(self) -> AsyncIterator[Frame]:
        live = _Live(self.max_buffered)
        readers = [
            Reader(self.bus, OUTPUT_STREAM, subjects.scan_output(self.scan_id), live.on_output),
            Reader(self.bus, EVENTS_STREAM, subjects.scan_events(self.scan_id), live.on_event),
        ]
        # Consume before reading the scan, so no change falls between the two.
        tasks = [asyncio.create_task(r.run(), name=f"feed-{r.subject}") for r in readers]
        projecting: asyncio.Task[None] | None = None
        try:
            shown = await self.view()
            yield shown
            async for frame in self._follow(live, shown):
                if isinstance(frame, tuple):  # a lifecycle step to look up off the line path
                    if projecting is not None:
                        projecting.cancel()
                    projecting = asyncio.create_task(self._project(live, *frame))
                    continue
                yield frame
        finally:
            live.closed = True
            for reader in readers:
                reader.stopped = True
            if projecting is not None:
                tasks.append(projecting)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    log.debug("feed task %s ended with %r", task.get_name(), task.exception())

    async def _project(self, live: _Live, view: ScanView, event: ScanEvent) -> None:
        """Put the scan as ingest projects `event` into the queue (see the module docstring)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout
        delay = 0.05
        fallback = applied(view, event) or view
        while loop.time() < deadline and not live.closed:
            try:
                current = await self.view()
            except GRPCError as exc:
                log.debug("scan %s: refresh failed: %s", self.scan_id, exc.message)
            else:
                if advance(current.status, event.status) is None:
                    await live.put(current)
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        await live.put(fallback)

    async def _follow(
        self, live: _Live, shown: ScanView
    ) -> AsyncIterator[Frame | tuple[ScanView, ScanEvent]]:
        loop = asyncio.get_running_loop()
        c = Console(self.after_seq, self.gap_timeout)
        target = shown.status  # the status last shown or being looked up
        if shown.status.terminal:
            c.ended(shown, *await self._retained_until())
        while True:
            for line in c.seq.ready():
                c.progressed()
                yield line
            if c.complete():
                break
            wait = None
            want = c.wants_stored(loop.time())
            if want is not None:
                try:
                    found = await self._stored(c.seq.last, want)
                except GRPCError as exc:
                    if exc.status is not Status.UNAVAILABLE:
                        raise
                    # Queries is away (restarting, or NATS reconnecting): ask again later,
                    # as for lines the durable copy does not have yet.
                    log.debug("scan %s: durable copy unavailable: %s", self.scan_id, exc.message)
                    found = []
                if not c.stored(found, loop.time()):
                    log.warning(
                        "scan %s: console lines after %d never arrived; skipping them",
                        self.scan_id,
                        c.seq.last,
                    )
                continue
            if c.filling():
                wait = max(c.retry_at - loop.time(), 0.01)
            elif c.final is not None:
                wait = self.gap_timeout
            try:
                item = await asyncio.wait_for(live.queue.get(), wait)
            except TimeoutError:
                c.live_quiet()
                continue
            if isinstance(item, tuple):
                c.delivered(*item)
            elif isinstance(item, ScanEvent):
                if advance(target, item.status) is not None:
                    target = item.status
                    yield shown, item
            elif c.final is None and advance(shown.status, item.status) is not None:
                shown = item
                if item.status.terminal:
                    c.ended(item, *await self._retained_until())
                else:
                    yield item
        assert c.final is not None
        yield c.final
