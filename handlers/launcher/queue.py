"""The admission queue, kept on the bus: the `admission` KV bucket.

- `waiting.<scan_id>`: a scan waiting for a slot (`admission.Waiting`), created once when the
  launcher takes its start command (or a retry) and deleted by whoever claims it: the
  dispatcher that launches it or a cancel, each with a compare-and-set on the key's revision,
  so only one of them gets it.
- `slots`: every held slot (`admission.Slots`), changed only by compare-and-set on the key's
  revision, so launcher replicas never hold more than the limit together.

Each launcher mirrors the bucket through a KV watch and dispatches from its mirror in
`fair_order`; a slot is freed when its scan ends (the launcher's event consumer), and a slot
claimed by a launcher that died before launching is freed by `sweep`. `purge_markers` takes
the delete markers of keys claimed over an hour ago out of the bucket (each would stay
forever, and a full bucket refuses every new scan). Everything survives a
restart of any process: the queue is JetStream's, not a launcher's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts import wire
from handlers.admission import (
    BUCKET,
    SLOTS,
    Mirror,
    Slots,
    Waiting,
    admit,
    decode_waiting,
    fair_order,
    freed,
    round_for,
    slots_decoder,
    taken,
    waiting_key,
)

log = logging.getLogger(__name__)

# A slot claimed this long ago for a scan that still waits was claimed by a launcher that
# died before launching it.
STALE_CLAIM = timedelta(seconds=60)
# Delete markers older than this are purged, every PURGE_EVERY seconds. Until then a mirror
# that starts sees the key as gone (and the scan as having left the queue).
MARKER_AGE = timedelta(hours=1)
PURGE_EVERY = 600.0

# What launching a claimed scan came to: the slot is kept only for "launched".
Launch = Callable[[Waiting], Awaitable[str]]


class AdmissionQueue:
    def __init__(
        self,
        kv: KeyValue,
        launch: Launch,
        *,
        max_running: int,
        per_target: int,
        js: JetStreamContext | None = None,
        bucket: str = BUCKET,
    ) -> None:
        self.kv = kv
        # Purging delete markers needs the stream API; without it markers stay.
        self.js = js
        self.stream = f"KV_{bucket}"
        self.subject = f"$KV.{bucket}."
        self.launch = launch
        self.max_running = max_running
        self.per_target = per_target
        self.owner = uuid.uuid4().hex[:12]
        self._wake = asyncio.Event()
        self.mirror = Mirror(kv, self._wake.set, markers=js is not None)
        self._launching: set[str] = set()
        self._pause_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def waiting(self) -> dict[str, tuple[Waiting, int]]:
        return self.mirror.waiting

    async def open(self) -> None:
        await self.mirror.open()
        self._task = asyncio.create_task(self._dispatch(), name="admission-dispatch")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            # Python 3.11's wait_for drops a cancel that lands as its wait ends (the wake event
            # set at that moment): the dispatcher also stops at `_closing`.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.mirror.close()

    def pause(self, seconds: float) -> None:
        """Launch nothing for `seconds` (the executor cannot be asked right now)."""
        self._pause_until = asyncio.get_running_loop().time() + seconds

    async def enqueue(self, w: Waiting, *, retry: bool = False) -> bool:
        """Put `w` in the queue, in its round (see `handlers.admission`); False when it is
        waiting already."""
        current = self.mirror.slots.round
        others = (x for x, _ in self.waiting.values())
        turn = current if retry else round_for(w.cmd.requested_by, others, current)
        w = msgspec.structs.replace(w, round=turn)
        try:
            rev = await self.kv.create(waiting_key(w.cmd.scan_id), wire.encode(w))
        except KeyWrongLastSequenceError:
            return False
        self.waiting[w.cmd.scan_id] = (w, rev)
        self._wake.set()
        return True

    async def claim(self, scan_id: str) -> Waiting | None:
        """Take `scan_id` out of the queue; None when it is not waiting (or another took it)."""
        try:
            entry = await self.kv.get(waiting_key(scan_id))
        except KeyNotFoundError:
            self.waiting.pop(scan_id, None)
            return None
        if not entry.value or entry.revision is None:
            return None
        try:
            await self.kv.delete(waiting_key(scan_id), last=entry.revision)
        except KeyWrongLastSequenceError:
            return None
        self.waiting.pop(scan_id, None)
        return decode_waiting(entry.value)

    async def release(self, scan_id: str, attempt: int | None = None) -> bool:
        """Free `scan_id`'s slot (only `attempt`'s, when given); False if it held none."""
        while True:
            slots, rev = await self._read_slots()
            after = freed(slots, scan_id, attempt)
            if after is None:
                return False
            if await self._write_slots(after, rev):
                self.mirror.slots = after
                self._wake.set()
                return True

    async def sweep(self) -> None:
        """Free slots claimed for scans that still wait: their launcher died before launching."""
        slots, _ = await self._read_slots()
        now = datetime.now(UTC)
        for scan_id, slot in slots.held.items():
            if scan_id not in self.waiting or scan_id in self._launching:
                continue
            if slot.owner != self.owner and now - slot.at < STALE_CLAIM:
                continue
            log.warning("scan %s: freeing a slot claimed but never launched", scan_id)
            await self.release(scan_id, slot.attempt)

    async def purge_markers(self, older_than: timedelta = MARKER_AGE) -> int:
        """Purge the delete markers of `waiting.` keys older than `older_than`; how many.

        Each purge is bounded by the marker's own sequence, so a key created again since (a
        retry) keeps its new entry."""
        if self.js is None:
            return 0
        now = datetime.now(UTC)
        old = [
            (scan_id, rev)
            for scan_id, (rev, at) in self.mirror.markers.items()
            if at is not None and now - at >= older_than
        ]
        for scan_id, rev in old:
            subject = self.subject + waiting_key(scan_id)
            await self.js.purge_stream(self.stream, subject=subject, seq=rev + 1)
            if self.mirror.markers.get(scan_id, (0, None))[0] == rev:
                del self.mirror.markers[scan_id]
        return len(old)

    async def _read_slots(self) -> tuple[Slots, int | None]:
        try:
            entry = await self.kv.get(SLOTS)
        except KeyNotFoundError:
            return Slots(), None
        return (slots_decoder.decode(entry.value) if entry.value else Slots()), entry.revision

    async def _write_slots(self, slots: Slots, rev: int | None) -> bool:
        try:
            if rev is None:
                await self.kv.create(SLOTS, wire.encode(slots))
            else:
                await self.kv.update(SLOTS, wire.encode(slots), last=rev)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def _take(self, ordered: list[Waiting]) -> list[Waiting]:
        """Hold slots for the first admissible scans of `ordered`: a compare-and-set on
        `slots`, tried again from a fresh read when another launcher wrote it meanwhile."""
        while True:
            slots, rev = await self._read_slots()
            chosen = admit(ordered, slots, max_running=self.max_running, per_target=self.per_target)
            if not chosen:
                self.mirror.slots = slots
                return []
            after = taken(slots, chosen, owner=self.owner, now=datetime.now(UTC))
            if await self._write_slots(after, rev):
                self.mirror.slots = after
                return chosen

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        last_sweep = loop.time()
        last_purge = loop.time() - PURGE_EVERY
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            if self._closing:
                return
            try:
                if loop.time() - last_sweep > 10:
                    last_sweep = loop.time()
                    await self.sweep()
                if loop.time() - last_purge > PURGE_EVERY:
                    last_purge = loop.time()
                    await self.purge_markers()
                if not self.waiting or loop.time() < self._pause_until:
                    continue
                ordered = fair_order(w for w, _ in self.waiting.values())
                chosen = await self._take(
                    [w for w in ordered if w.cmd.scan_id not in self._launching]
                )
                if chosen:
                    await asyncio.gather(*(self._start(w) for w in chosen))
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("admission: dispatching failed")
                await asyncio.sleep(1.0)

    async def _start(self, w: Waiting) -> None:
        scan_id = w.cmd.scan_id
        self._launching.add(scan_id)
        try:
            claimed = await self.claim(scan_id)
            outcome = "gone" if claimed is None else await self.launch(claimed)
            if outcome != "launched":
                await self.release(scan_id, w.attempt)
        finally:
            self._launching.discard(scan_id)
