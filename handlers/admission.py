"""Admission: which waiting scans may start now, and the queue's state on the bus.

The rules (pure):
- At most `max_running` jobs at once, across every launcher (their slots are one key of the
  `admission` bucket, see `handlers.launcher.queue`).
- At most `per_target` jobs of one tool on one target at once (0: no limit), so one host is
  not scanned by two jobs of the same tool together. A scan held back by it does not hold
  back the scans behind it.
- Fair between requesters (`requested_by`), by rounds: a scan joins the queue in round
  `max(its requester's last waiting round + 1, the current round)`, where the current round
  is that of the last scan launched; scans launch by round, then oldest first. So the k-th
  waiting scan of every requester goes before anyone's (k+1)-th, and a requester who asks
  now joins the round being served: one token's burst of 1,000 delays another's single scan
  by at most one launch per requester ahead of it in that round. A retry joins the current
  round (it has waited its turn once).

The state: `waiting.<scan_id>` keys (`Waiting`) and one `slots` key (`Slots`, with the
current round). `Mirror` follows the bucket with a KV watch: the launcher dispatches from it,
and the queries service answers `queue_position` from it. A key's delete marker stays in the
bucket until the launcher purges it (`handlers.launcher.queue`), so the bucket holds what
waits, not every scan there ever was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import msgspec
from nats.js.kv import KeyValue

from contracts.scans import StartScan

log = logging.getLogger(__name__)

BUCKET = "admission"
SLOTS = "slots"
WAITING = "waiting."
# Scans a mirror remembers as having left the queue (for `queue_position` while the scan's
# own status catches up): the most recent ones only.
LEFT_KEPT = 100_000


class Waiting(msgspec.Struct, frozen=True, kw_only=True):
    """A scan in the queue: its start command, the attempt it waits to launch, its round."""

    cmd: StartScan
    attempt: int = 1
    round: int = 0
    trace: str = ""  # the start command's `traceparent`: the launch continues its trace

    @property
    def order(self) -> tuple[int, datetime, str]:
        return self.round, self.cmd.requested_at, self.cmd.scan_id


class Slot(msgspec.Struct, frozen=True, kw_only=True):
    """A job admitted to run: held from its launch until its scan's terminal event."""

    tool: str
    target: str
    attempt: int
    at: datetime
    owner: str  # the launcher process that took it


class Slots(msgspec.Struct, frozen=True, kw_only=True):
    held: dict[str, Slot] = {}
    round: int = 0  # the round of the last scan launched


def waiting_key(scan_id: str) -> str:
    return WAITING + scan_id


def round_for(requester: str, waiting: Iterable[Waiting], current: int) -> int:
    """The round a new scan of `requester` joins."""
    last = max((w.round for w in waiting if w.cmd.requested_by == requester), default=-1)
    return max(last + 1, current)


def fair_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """`waiting` in admission order."""
    return sorted(waiting, key=lambda w: w.order)


def position(waiting: Iterable[Waiting], scan_id: str) -> int:
    """1 + the scans of `waiting` admitted before `scan_id`'s (which must be among them)."""
    entries = list(waiting)
    mine = next(w for w in entries if w.cmd.scan_id == scan_id)
    return 1 + sum(1 for w in entries if w.order < mine.order)


def admit(
    ordered: Iterable[Waiting], slots: Slots, *, max_running: int, per_target: int
) -> list[Waiting]:
    """The scans of `ordered` (in `fair_order`) that may launch now, given the held slots."""
    free = max_running - len(slots.held)
    targets = Counter((s.tool, s.target) for s in slots.held.values())
    chosen: list[Waiting] = []
    for w in ordered:
        if len(chosen) >= free:
            break
        if w.cmd.scan_id in slots.held:
            continue
        key = (w.cmd.tool, w.cmd.target)
        if per_target and targets[key] >= per_target:
            continue
        targets[key] += 1
        chosen.append(w)
    return chosen


def taken(slots: Slots, chosen: Iterable[Waiting], *, owner: str, now: datetime) -> Slots:
    """`slots` with a slot for each of `chosen`, the current round theirs if later."""
    held = dict(slots.held)
    current = slots.round
    for w in chosen:
        held[w.cmd.scan_id] = Slot(
            tool=w.cmd.tool, target=w.cmd.target, attempt=w.attempt, at=now, owner=owner
        )
        current = max(current, w.round)
    return Slots(held=held, round=current)


def freed(slots: Slots, scan_id: str, attempt: int | None = None) -> Slots | None:
    """`slots` without `scan_id`'s slot (only if it is for `attempt`, when given); None when
    there is nothing to free."""
    slot = slots.held.get(scan_id)
    if slot is None or (attempt is not None and slot.attempt != attempt):
        return None
    return Slots(held={k: v for k, v in slots.held.items() if k != scan_id}, round=slots.round)


_waiting = msgspec.json.Decoder(Waiting)
slots_decoder = msgspec.json.Decoder(Slots)


def decode_waiting(data: bytes) -> Waiting:
    return _waiting.decode(data)


class Mirror:
    """The `admission` bucket in memory, fed by a KV watch: waiting scans (with their key's
    revision), the slots last written, and the scans that left the queue (claimed)."""

    def __init__(
        self, kv: KeyValue, on_change: Callable[[], None] = lambda: None, *, markers: bool = False
    ) -> None:
        self.kv = kv
        self.on_change = on_change
        # Only the launcher, which purges them, keeps track of delete markers.
        self.track_markers = markers
        self.waiting: dict[str, tuple[Waiting, int]] = {}
        # An ordered set (dicts keep insertion order): the oldest go first past LEFT_KEPT.
        self.left: dict[str, None] = {}
        # The delete markers of `waiting.` keys: scan id -> (the marker's revision, its time).
        self.markers: dict[str, tuple[int, datetime | None]] = {}
        self.slots = Slots()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        loaded = asyncio.Event()
        self._task = asyncio.create_task(self._follow(loaded), name="admission-watch")
        await asyncio.wait_for(loaded.wait(), 30)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def position(self, cmd: StartScan) -> int:
        """`queue_position` of `cmd`'s scan: among the waiting, or where it will join when the
        launcher has not taken it in yet; 0 once it left the queue (launched or cancelled)."""
        entries = [w for w, _ in self.waiting.values()]
        if cmd.scan_id in self.waiting:
            return position(entries, cmd.scan_id)
        if cmd.scan_id in self.left:
            return 0
        joins = round_for(cmd.requested_by, entries, self.slots.round)
        mine = Waiting(cmd=cmd, round=joins)
        return 1 + sum(1 for w in entries if w.order < mine.order)

    async def _follow(self, loaded: asyncio.Event) -> None:
        while True:
            try:
                watcher = await self.kv.watchall()
                try:
                    async for entry in watcher:
                        if entry is None:  # the end of the initial values
                            loaded.set()
                            continue
                        self._apply(entry)
                        if loaded.is_set():
                            self.on_change()
                finally:
                    await watcher.stop()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("admission: the watch failed; watching again")
                await asyncio.sleep(1.0)

    def _apply(self, entry: KeyValue.Entry) -> None:
        deleted = entry.operation in ("DEL", "PURGE") or not entry.value
        if entry.key == SLOTS:
            if not deleted and entry.value:
                self.slots = slots_decoder.decode(entry.value)
            return
        if not entry.key.startswith(WAITING):
            return
        scan_id = entry.key.removeprefix(WAITING)
        if deleted:
            if self.waiting.pop(scan_id, None) is not None or entry.operation:
                self.left[scan_id] = None
                if len(self.left) > LEFT_KEPT:
                    del self.left[next(iter(self.left))]
            if self.track_markers and entry.revision is not None:
                self.markers[scan_id] = (entry.revision, _created(entry))
        elif entry.revision is not None:
            self.waiting[scan_id] = (decode_waiting(entry.value or b""), entry.revision)
            self.left.pop(scan_id, None)
            self.markers.pop(scan_id, None)


def _created(entry: KeyValue.Entry) -> datetime | None:
    # nats-py types it as an int; a watch gives the message's time (a datetime).
    created: Any = entry.created
    return created if isinstance(created, datetime) else None
