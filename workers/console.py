"""A scan's console: the scanner's stdout and stderr as numbered lines on `scan.output.<id>`.

Rules, in the order a byte meets them:
- Each pipe is read in chunks and cut into lines by a `LineSplitter`; a trailing `\\r\\n` or
  `\\n` is stripped. A line longer than `MAX_LINE_BYTES` is cut there (at a UTF-8 character
  boundary where there is one) and marked `[jetscan: line cut at N bytes]`; the rest of it is
  skipped. Bytes are decoded as UTF-8 with invalid sequences replaced by U+FFFD.
- A scan's console is capped at `max_bytes` of line text (`JETSCAN_CONSOLE_MAX_BYTES`): the
  line that would pass it is replaced by one stderr marker saying the console was cut there,
  later lines are only counted, and `close` adds one more marker with how many lines and
  bytes were left out. The scanner's raw output file is stored whole regardless; the cap
  keeps a scanner that prints without end from filling the OUTPUT stream.
- `Console.line` numbers lines with one counter shared by both pipes, in the order they are
  read: `seq` runs 1, 2, 3... without gaps. It never waits: lines queue in memory.
- The queue is bounded by `max_queued_bytes` of encoded messages. A line that does not fit
  while the bus is behind is dropped *before* it gets a number, and the next line that fits is
  preceded by one stderr marker line saying how many were dropped, so `seq` stays gapless and
  the loss is visible where it happened. The pipes are never blocked: a scanner stalled on a
  full pipe would change its timing, and a full pipe can deadlock a tool writing both streams.
- A sender task publishes with JetStream `publish_async`, at most `MAX_IN_FLIGHT` unacked.
  Each message takes every line queued behind it, up to `MAX_BATCH_LINES` lines and
  `MAX_BATCH_BYTES`: one line alone goes as an `OutputLine`, several as one `OutputLines`. A
  slow scanner's lines therefore go out one by one the moment they are read, and a fast
  scanner's in batches, at one JetStream round trip per batch instead of per line.
  Every message carries `Nats-Msg-Id` `output:<scan_id>:<first seq>[-<last seq>]`, so a
  resend after a lost ack (the same bytes: batches are cut once) is dropped by the server.
  A publish not acked within `ack_timeout` or refused is resent up to `max_attempts` times;
  a resent message can land in the stream after later ones, which is why readers order by
  `seq`, not by stream sequence.
- `close` appends `EndOfOutput` (`seq` = last line + 1) and lets the sender drain.
- A piece whose JSON would exceed `MAX_TEXT_JSON_BYTES` (only possible when it is mostly
  control characters, which JSON escapes to six bytes each) is truncated, as it could not be
  published under the OUTPUT stream's message size limit at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import nats.errors
from nats.js import JetStreamContext, api

from contracts import subjects, wire
from contracts.jobs import DEFAULT_CONSOLE_MAX_BYTES
from contracts.output import EndOfOutput, OutputLine, Stream

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
MAX_TEXT_JSON_BYTES = 192 * 1024
MAX_IN_FLIGHT = 128
# A few hundred typical lines: enough to make a message's cost per line small, while a
# replaying viewer's pull (bounded in bytes, see edge.live) still takes several messages.
MAX_BATCH_BYTES = 32 * 1024
MAX_BATCH_LINES = 1024
# `OutputLines` around its head and lines: the seq's digits, `"lines":[`, `]}`.
_ENVELOPE_BYTES = 32
MAX_QUEUED_BYTES = 16 * 1024 * 1024
MAX_CONSOLE_BYTES = DEFAULT_CONSOLE_MAX_BYTES
_READ_SIZE = 64 * 1024
_TRUNCATED = " [jetscan: line truncated]"
_CUT = b" [jetscan: line cut at %d bytes]"
# Upper bound of the drop marker's encoded size.
_MARKER_BYTES = 512


class LineSplitter:
    """Cuts a byte stream into lines of at most `max_line` bytes (see the module docstring).

    An overlong line keeps its first `max_line` bytes, marked as cut; the rest of it is
    skipped as it arrives, so memory stays at one line whatever the scanner prints.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max = max_line
        self._rest = b""
        self._skipping = False
        self._marker = _CUT % max_line

    def feed(self, chunk: bytes) -> list[bytes]:
        *complete, rest = (self._rest + chunk).split(b"\n")
        lines: list[bytes] = []
        for line in complete:
            if self._skipping:  # the tail of a line already cut
                self._skipping = False
                continue
            lines.append(self._cut(line[:-1] if line.endswith(b"\r") else line))
        if self._skipping:
            rest = b""
        # One byte of slack: a '\r' at the end may belong to a '\r\n' split across chunks.
        elif len(rest) > self._max + 1:
            lines.append(self._cut(rest))
            rest, self._skipping = b"", True
        self._rest = rest
        return lines

    def finish(self) -> list[bytes]:
        """The unterminated last line, if any."""
        rest, self._rest = self._rest, b""
        if not rest:
            return []
        return [self._cut(rest[:-1] if rest.endswith(b"\r") else rest)]

    def _cut(self, line: bytes) -> bytes:
        if len(line) <= self._max:
            return line
        return line[: _boundary(line, self._max)] + self._marker


def _boundary(data: bytes, limit: int) -> int:
    """The largest cut <= `limit` that does not split a UTF-8 sequence (`limit` if none is)."""
    for cut in range(limit, max(limit - 3, 0), -1):
        if data[cut] & 0xC0 != 0x80:
            return cut
    return limit


def decode(raw: bytes) -> str:
    """A piece as text: UTF-8, invalid bytes replaced, cut short if its JSON would not fit."""
    text = raw.decode("utf-8", errors="replace")
    # JSON costs two quotes and at most 6 bytes per input byte (a \u00XX escape): most
    # lines skip the exact check.
    if len(raw) * 6 + 2 <= MAX_TEXT_JSON_BYTES:
        return text
    if len(wire.encode(text)) <= MAX_TEXT_JSON_BYTES:
        return text
    while len(wire.encode(text)) > MAX_TEXT_JSON_BYTES - len(_TRUNCATED):
        text = text[: len(text) * 3 // 4]
    return text + _TRUNCATED


@dataclass(slots=True)
class _Pending:
    seq: int
    payload: bytes
    attempts: int = 0
    last: int = 0  # the last line's seq when `payload` carries several (else 0)
    is_line: bool = True

    @property
    def msg_id(self) -> str:
        return f"{self.seq}-{self.last}" if self.last else str(self.seq)


class Console:
    """Numbered console lines of one scan, queued and published (see the module docstring).

    `js` should be a context of its own made with `publish_async_max_pending=MAX_IN_FLIGHT`:
    `publish_async` bounds unacked messages per context. Run `run()` as a task, feed `line()`,
    then `close()` and await the task.
    """

    def __init__(
        self,
        js: JetStreamContext,
        scan_id: str,
        *,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        max_bytes: int = MAX_CONSOLE_BYTES,
        ack_timeout: float = 5.0,
        max_attempts: int = 5,
    ) -> None:
        self._js = js
        self._scan_id = scan_id
        self._subject = subjects.scan_output(scan_id)
        # `OutputLines` up to its first seq, spelled the way msgspec would encode it.
        self._batch_head = b'{"type":"lines","scan_id":%s,"seq":' % wire.encode(scan_id)
        self._max_queued = max_queued_bytes
        self._max_bytes = max_bytes
        self._shown_bytes = 0
        self._ack_timeout = ack_timeout
        self._max_attempts = max_attempts
        self._queue: deque[_Pending] = deque()
        self._retry: deque[_Pending] = deque()
        self._queued_bytes = 0
        self._in_flight = 0
        self._unreported_drops = 0
        self._closing = False
        self._wakeup = asyncio.Event()
        self.seq = 0
        self.dropped = 0
        self.lost = 0
        # Lines (and their bytes) past the console's cap: counted, not sent.
        self.cut_lines = 0
        self.cut_bytes = 0

    def line(self, stream: Stream, raw: bytes, at: datetime | None = None) -> None:
        """Queue one line read `at` (now by default); drop it (and count it) when the queue
        is full. Never waits."""
        if self._closing:
            raise RuntimeError("console is closed")
        if self.cut_lines or self._shown_bytes + len(raw) > self._max_bytes:
            self._past_cap(raw)
            return
        # A pending drop marker takes the next number, and room, ahead of this line.
        marker = 1 if self._unreported_drops else 0
        payload = self._encode_line(self.seq + 1 + marker, stream, decode(raw), at)
        if self._queued_bytes + len(payload) + marker * _MARKER_BYTES > self._max_queued:
            self.dropped += 1
            self._unreported_drops += 1
            return
        if marker:
            self._report_drops()
        self._shown_bytes += len(raw)
        self._enqueue(payload)

    def _past_cap(self, raw: bytes) -> None:
        first = not self.cut_lines
        self.cut_lines += 1
        self.cut_bytes += len(raw)
        if first:
            if self._unreported_drops:
                self._report_drops()
            text = (
                f"[jetscan] console cut here: it reached its cap of {self._max_bytes} bytes"
                " (JETSCAN_CONSOLE_MAX_BYTES); the scanner's raw output file is kept whole"
            )
            log.warning("scan %s: %s", self._scan_id, text)
            self._enqueue(self._encode_line(self.seq + 1, Stream.STDERR, text))

    def close(self, exit_code: int | None) -> None:
        """Append `EndOfOutput`; `run()` returns once everything is acked or given up on."""
        if self._closing:
            return
        if self._unreported_drops:
            self._report_drops()
        if self.cut_lines:
            text = (
                f"[jetscan] {self.cut_lines} console line(s) ({self.cut_bytes} bytes) past the"
                " cap were not shown"
            )
            self._enqueue(self._encode_line(self.seq + 1, Stream.STDERR, text))
        end = EndOfOutput(scan_id=self._scan_id, seq=self.seq + 1, time=_now(), exit_code=exit_code)
        self._enqueue(wire.encode(end), is_line=False)
        self._closing = True

    async def pump(self, reader: asyncio.StreamReader, stream: Stream) -> None:
        """Read a pipe to its end, line by line into this console."""
        splitter = LineSplitter()
        while chunk := await reader.read(_READ_SIZE):
            # The lines of one read were read at one time (and the clock costs ~15% of a line).
            at = _now()
            for piece in splitter.feed(chunk):
                self.line(stream, piece, at)
        for piece in splitter.finish():
            self.line(stream, piece)

    async def run(self) -> None:
        while True:
            pending = self._retry.popleft() if self._retry else self._take()
            if pending is None:
                if self._closing and self._in_flight == 0:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._send(pending)

    def _take(self) -> _Pending | None:
        """The next message: the first queued entry and the lines right behind it."""
        if not self._queue:
            return None
        first = self._queue.popleft()
        self._queued_bytes -= len(first.payload)
        if not first.is_line:
            return first
        batch = [first.payload]
        size = _ENVELOPE_BYTES + len(self._batch_head) + len(first.payload)
        while (
            self._queue
            and self._queue[0].is_line
            and len(batch) < MAX_BATCH_LINES
            and size + len(self._queue[0].payload) < MAX_BATCH_BYTES
        ):
            nxt = self._queue.popleft()
            self._queued_bytes -= len(nxt.payload)
            batch.append(nxt.payload)
            size += len(nxt.payload) + 1
        if len(batch) == 1:
            return first
        payload = b"%s%d,%s%s]}" % (self._batch_head, first.seq, b'"lines":[', b",".join(batch))
        return _Pending(first.seq, payload, last=first.seq + len(batch) - 1)

    def _encode_line(
        self, seq: int, stream: Stream, text: str, at: datetime | None = None
    ) -> bytes:
        at = at or _now()
        line = OutputLine(scan_id=self._scan_id, seq=seq, time=at, stream=stream, text=text)
        return wire.encode(line)

    def _report_drops(self) -> None:
        text = (
            f"[jetscan] {self._unreported_drops} console line(s) dropped here:"
            " the bus did not keep up with the scanner"
        )
        log.warning("scan %s: %s", self._scan_id, text)
        self._unreported_drops = 0
        self._enqueue(self._encode_line(self.seq + 1, Stream.STDERR, text))

    def _enqueue(self, payload: bytes, *, is_line: bool = True) -> None:
        self.seq += 1
        self._queue.append(_Pending(self.seq, payload, is_line=is_line))
        self._queued_bytes += len(payload)
        self._wakeup.set()

    async def _send(self, pending: _Pending) -> None:
        headers = {api.Header.MSG_ID: subjects.msg_id("output", self._scan_id, pending.msg_id)}
        self._in_flight += 1
        try:
            future = await self._js.publish_async(
                self._subject, pending.payload, wait_stall=self._ack_timeout, headers=headers
            )
        except (nats.errors.Error, OSError) as exc:
            self._settle(pending, exc)
            # The connection is down or stalled: pause rather than spin through the attempts.
            await asyncio.sleep(min(self._ack_timeout, 1.0))
            return
        # nats-py never times out a publish_async future by itself.
        timer = asyncio.get_running_loop().call_later(self._ack_timeout, future.cancel)
        future.add_done_callback(partial(self._acked, pending, timer))

    def _acked(
        self, pending: _Pending, timer: asyncio.TimerHandle, future: asyncio.Future[api.PubAck]
    ) -> None:
        timer.cancel()
        if future.cancelled():
            self._settle(pending, TimeoutError(f"no ack within {self._ack_timeout} s"))
        else:
            self._settle(pending, future.exception())

    def _settle(self, pending: _Pending, error: BaseException | None) -> None:
        self._in_flight -= 1
        self._wakeup.set()
        if error is None:
            return
        pending.attempts += 1
        if pending.attempts < self._max_attempts:
            self._retry.append(pending)
            return
        self.lost += 1
        log.error(
            "scan %s: console message %d lost after %d attempts: %r",
            self._scan_id,
            pending.seq,
            pending.attempts,
            error,
        )


def _now() -> datetime:
    return datetime.now(UTC)
