"""One viewer's console as bookkeeping, without I/O: line order, gaps, the end. Pure."""

from __future__ import annotations

import heapq

import msgspec

from contracts.output import EndOfOutput, OutputLine, OutputMessage, lines_of
from contracts.scans import ScanEvent, ScanStatus, ScanView, advance

# Lines asked of the durable copy at a time.
PAGE = 1000


class Sequencer:
    """Lines in, lines out in `seq` order without gaps or duplicates (pure)."""

    def __init__(self, after_seq: int = 0) -> None:
        self.next = after_seq + 1
        self._held: dict[int, OutputLine] = {}
        self._heap: list[int] = []

    @property
    def last(self) -> int:
        return self.next - 1

    @property
    def held(self) -> int:
        return len(self._held)

    def add(self, line: OutputLine) -> None:
        if line.seq >= self.next and line.seq not in self._held:
            self._held[line.seq] = line
            heapq.heappush(self._heap, line.seq)

    def ready(self) -> list[OutputLine]:
        out = []
        while self._heap and self._heap[0] <= self.next:
            seq = heapq.heappop(self._heap)
            line = self._held.pop(seq, None)
            if line is not None and seq == self.next:
                out.append(line)
                self.next += 1
        return out

    def gap(self) -> tuple[int, int] | None:
        """The missing (first, last) seq before the earliest held line, if there is one."""
        if not self._heap:
            return None
        return (self.next, self._heap[0] - 1) if self._heap[0] > self.next else None

    def skip(self) -> None:
        """Give up on the current gap: continue at the earliest held line."""
        if self._heap:
            self.next = max(self.next, self._heap[0])


def applied(view: ScanView, event: ScanEvent) -> ScanView | None:
    """`view` with `event` applied the way ingest projects it, or None if it changes nothing."""
    new = advance(view.status, event.status)
    if new is None:
        return None
    return msgspec.structs.replace(
        view,
        status=new,
        started_at=(view.started_at or event.at) if new is ScanStatus.RUNNING else view.started_at,
        finished_at=event.at if new.terminal else view.finished_at,
        exit_code=view.exit_code if view.exit_code is not None else event.exit_code,
        error=event.reason or view.error,
    )


class Console:
    """Where one viewer's console stands: what was sent, what is known of the end, and
    whether the durable copy is needed (see `edge.live`)."""

    def __init__(self, after_seq: int, gap_timeout: float) -> None:
        self.seq = Sequencer(after_seq)
        self.gap_timeout = gap_timeout
        self.final: ScanView | None = None
        self.end: int | None = None  # seq of EndOfOutput
        self.retained = 0  # stream seq the consumer must reach to have all the stream holds
        self.live_at = 0  # stream seq of the newest message the consumer delivered
        self.stored_done = False  # the durable copy had nothing after the last line
        self.retry_at = 0.0
        self.stuck_since: float | None = None

    def ended(self, view: ScanView, retained: int, end: int | None) -> None:
        self.final = view
        self.retained = retained
        self.end = self.end if self.end is not None else end

    def delivered(self, stream_seq: int, message: OutputMessage) -> None:
        self.live_at = max(self.live_at, stream_seq)
        if isinstance(message, EndOfOutput):
            self.end = message.seq
        for line in lines_of(message):
            self.seq.add(line)

    def progressed(self) -> None:
        self.stuck_since = None
        self.stored_done = False
        self.retry_at = 0.0

    def live_quiet(self) -> None:
        if self.final is not None and self.live_at < self.retained and not self.filling():
            # What the stream held at the end expired before the consumer reached it.
            self.retained = self.live_at

    def _tail(self) -> bool:
        """The scan ended and the stream gave all it holds: the rest can only be stored."""
        return self.final is not None and self.live_at >= self.retained and self.seq.held == 0

    def filling(self) -> bool:
        return self.seq.gap() is not None or (self._tail() and not self.complete())

    def complete(self) -> bool:
        if self.final is None or self.live_at < self.retained:
            return False
        if self.end is not None:
            return self.seq.next >= self.end
        return self.seq.held == 0 and self.stored_done

    def wants_stored(self, now: float) -> int | None:
        """How many lines to ask the durable copy for now, or None."""
        if not self.filling() or now < self.retry_at:
            return None
        missing = self.seq.gap()
        return PAGE if missing is None else min(PAGE, missing[1] - missing[0] + 1)

    def stored(self, found: list[OutputLine], now: float) -> bool:
        """Take lines from the durable copy; False when a gap was given up on."""
        for line in found:
            self.seq.add(line)
        if found and found[0].seq == self.seq.next:
            return True
        tail = self.seq.gap() is None
        if tail and self.end is None:
            self.stored_done = True  # a job that never sent EndOfOutput: this is all
            return True
        if self.stuck_since is None:
            self.stuck_since = now
        if now - self.stuck_since >= self.gap_timeout:
            self.stuck_since = None
            if tail and self.end is not None:
                self.seq.next = self.end
            else:
                self.seq.skip()
            return False
        self.retry_at = now + min(0.25 * 2 ** int((now - self.stuck_since) / 2), 2.0)
        return True
