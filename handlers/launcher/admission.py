"""Which waiting scans may start now: the admission rules, pure.

- At most `max_running` jobs at once, across every launcher (their slots are one key of the
  `admission` bucket, see `handlers.launcher.queue`).
- At most `per_target` jobs of one tool on one target at once (0: no limit), so one host is
  not scanned by two jobs of the same tool together. A scan held back by it does not hold
  back the scans behind it.
- Fair between requesters: round-robin by `requested_by`, the k-th waiting scan of every
  requester before anyone's (k+1)-th, each round oldest first. One token's burst of 1,000
  scans therefore delays another's single scan by at most one launch per other requester.

`queue_position` (the queries service, `handlers.store.queue_position`) counts the same
order in SQL over the scans in QUEUED.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

import msgspec

from contracts.scans import StartScan


class Waiting(msgspec.Struct, frozen=True, kw_only=True):
    """A scan in the queue: its start command and the attempt it waits to launch."""

    cmd: StartScan
    attempt: int = 1
    trace: str = ""  # the start command's `traceparent`: the launch continues its trace

    @property
    def ticket(self) -> tuple[datetime, str]:
        """Its place among one requester's scans: when the scan was asked for."""
        return self.cmd.requested_at, self.cmd.scan_id


class Slot(msgspec.Struct, frozen=True, kw_only=True):
    """A job admitted to run: held from its launch until its scan's terminal event."""

    tool: str
    target: str
    attempt: int
    at: datetime
    owner: str  # the launcher process that took it


class Slots(msgspec.Struct, frozen=True, kw_only=True):
    held: dict[str, Slot] = {}


def fair_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """`waiting` in admission order: by round (the scan's rank among its requester's waiting
    scans), then oldest first."""
    ranked: list[tuple[int, datetime, str, Waiting]] = []
    seen: Counter[str] = Counter()
    for w in sorted(waiting, key=lambda w: w.ticket):
        seen[w.cmd.requested_by] += 1
        ranked.append((seen[w.cmd.requested_by], *w.ticket, w))
    ranked.sort(key=lambda r: r[:3])
    return [r[3] for r in ranked]


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
    """`slots` with a slot for each of `chosen`."""
    held = dict(slots.held)
    for w in chosen:
        held[w.cmd.scan_id] = Slot(
            tool=w.cmd.tool, target=w.cmd.target, attempt=w.attempt, at=now, owner=owner
        )
    return Slots(held=held)


def freed(slots: Slots, scan_id: str, attempt: int | None = None) -> Slots | None:
    """`slots` without `scan_id`'s slot (only if it is for `attempt`, when given); None when
    there is nothing to free."""
    slot = slots.held.get(scan_id)
    if slot is None or (attempt is not None and slot.attempt != attempt):
        return None
    return Slots(held={k: v for k, v in slots.held.items() if k != scan_id})
