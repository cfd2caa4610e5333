from __future__ import annotations

import asyncio
import itertools
import uuid

import msgspec
import pytest
from nats.aio.client import Client

from contracts.output import EndOfOutput, OutputLine, OutputLines, Stream
from tests.workers import messages
from workers.console import (
    MAX_BATCH_BYTES,
    MAX_BATCH_LINES,
    MAX_IN_FLIGHT,
    MAX_TEXT_JSON_BYTES,
    Console,
    LineSplitter,
    decode,
)

CUT = b" [jetscan: line cut at 8 bytes]"


def split(chunks: list[bytes], max_line: int = 8) -> list[bytes]:
    splitter = LineSplitter(max_line)
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    return lines + splitter.finish()


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b""], []),
        ([b"a\nb\n"], [b"a", b"b"]),
        ([b"a\r\nb\r\n"], [b"a", b"b"]),
        ([b"\n\n"], [b"", b""]),
        ([b"unterminated"], [b"untermin" + CUT]),
        ([b"a\r"], [b"a"]),
        ([b"x\ry\n"], [b"x\ry"]),
        ([b"ab", b"c\nd", b"e\n"], [b"abc", b"de"]),
        ([b"ab\r", b"\ncd\n"], [b"ab", b"cd"]),
        # Long lines keep their first max_line bytes, marked; the rest of them is skipped.
        ([b"0123456789abcdefXY\nnext\n"], [b"01234567" + CUT, b"next"]),
        ([b"01234567\n"], [b"01234567"]),
        ([b"01234567\r\n"], [b"01234567"]),
        ([b"0123", b"4567", b"\r", b"\n"], [b"01234567"]),
        ([b"0123456789", b"abcdefgh", b"ij\nk\n"], [b"01234567" + CUT, b"k"]),
        ([b"0123456789", b"abcdefgh", b"ij"], [b"01234567" + CUT]),
        # A cut never falls inside a UTF-8 sequence when it can be avoided.
        (["1234567é\n".encode()], [b"1234567" + CUT]),
        (["123456€\n".encode()], [b"123456" + CUT]),
        ([b"\x80" * 10 + b"\n"], [b"\x80" * 8 + CUT]),
    ],
)
def test_the_splitter_cuts_lines(chunks: list[bytes], lines: list[bytes]) -> None:
    assert split(chunks) == lines


def test_the_splitter_holds_at_most_one_line_of_bytes() -> None:
    splitter = LineSplitter(8)
    assert splitter.feed(b"x" * 100) == [b"x" * 8 + CUT]
    # The rest of an endless line costs nothing: it is skipped as it arrives.
    for _ in range(1000):
        assert splitter.feed(b"y" * 65536) == []
        assert len(splitter._rest) == 0
    assert splitter.feed(b"zz\nnext") == []
    assert splitter.finish() == [b"next"]


def test_pieces_are_decoded_with_replacement() -> None:
    assert decode("naïve".encode()) == "naïve"
    assert decode(b"bad \xff byte") == "bad \ufffd byte"


def test_a_piece_whose_json_would_not_fit_is_truncated() -> None:
    text = decode(b"\x01" * 64 * 1024)
    assert text.endswith("[jetscan: line truncated]")
    assert len(msgspec.json.encode(text)) <= MAX_TEXT_JSON_BYTES
    assert decode(b"x" * 64 * 1024) == "x" * 64 * 1024
    assert decode("é".encode() * 32 * 1024) == "é" * 32 * 1024
    assert decode(b"\x01" * 30000) == "\x01" * 30000


async def run_console(console: Console, feed: list[tuple[Stream, bytes]]) -> None:
    for stream, raw in feed:
        console.line(stream, raw)
    sender = asyncio.create_task(console.run())
    console.close(0)
    await asyncio.wait_for(sender, 30)


def lines_of(msgs: list[OutputLine | EndOfOutput]) -> list[OutputLine]:
    return [m for m in msgs if isinstance(m, OutputLine)]


async def test_lines_of_both_streams_share_one_gapless_sequence(nc: Client) -> None:
    scan_id = uuid.uuid4().hex
    js = nc.jetstream(publish_async_max_pending=MAX_IN_FLIGHT)
    console = Console(js, scan_id)
    feed = [(Stream.STDOUT if i % 3 else Stream.STDERR, f"line {i}".encode()) for i in range(1000)]
    await run_console(console, feed)

    msgs = await messages.output(nc.jetstream(), scan_id)
    assert [m.seq for m in msgs] == list(range(1, 1002))
    assert [(line.stream, line.text) for line in lines_of(msgs)] == [
        (stream, raw.decode()) for stream, raw in feed
    ]
    end = msgs[-1]
    assert isinstance(end, EndOfOutput)
    assert (end.scan_id, end.exit_code) == (scan_id, 0)
    assert (console.seq, console.dropped, console.lost) == (1001, 0, 0)


async def test_queued_lines_go_out_in_batches_under_the_size_limits(nc: Client) -> None:
    scan_id = uuid.uuid4().hex
    feed = [(Stream.STDOUT, f"line {i}".encode()) for i in range(2500)]
    feed += [(Stream.STDERR, b"y" * 10_000) for _ in range(5)]
    feed += [(Stream.STDERR, b"z" * 40_000)]
    await run_console(Console(nc.jetstream(), scan_id), feed)

    sent = await messages.output_messages(nc.jetstream(), scan_id)
    # Everything was queued before the sender ran, so every message but the last of a kind
    # is as full as the limits allow: the next line would have passed one of them.
    *batches, long_line, end = sent
    assert all(isinstance(b, OutputLines) for b in batches)
    sizes = [len(b.lines) for b in batches if isinstance(b, OutputLines)]
    assert sum(sizes) == 2505
    assert sizes[-1] <= 3  # 10 kB lines: three fit in MAX_BATCH_BYTES, four would not
    for batch, following in itertools.pairwise(batches):
        assert isinstance(batch, OutputLines) and isinstance(following, OutputLines)
        size = len(msgspec.json.encode(batch))
        assert size < MAX_BATCH_BYTES
        grown = size + len(msgspec.json.encode(following.lines[0]))
        assert grown >= MAX_BATCH_BYTES or len(batch.lines) == MAX_BATCH_LINES
    # A line over the batch limit goes alone.
    assert isinstance(long_line, OutputLine) and long_line.seq == 2506
    assert isinstance(end, EndOfOutput) and end.seq == 2507
    flat = await messages.output(nc.jetstream(), scan_id)
    assert [m.seq for m in flat] == list(range(1, 2508))


async def test_a_line_that_finds_the_queue_empty_goes_alone(nc: Client) -> None:
    scan_id = uuid.uuid4().hex
    console = Console(nc.jetstream(), scan_id)
    sender = asyncio.create_task(console.run())
    for i in range(3):
        console.line(Stream.STDOUT, f"slow {i}".encode())
        for _ in range(50):  # until the sender has taken it
            await asyncio.sleep(0.01)
            if not console._queue:
                break
    console.close(0)
    await asyncio.wait_for(sender, 30)
    sent = await messages.output_messages(nc.jetstream(), scan_id)
    assert [type(m) for m in sent] == [OutputLine, OutputLine, OutputLine, EndOfOutput]


async def test_a_resent_console_does_not_duplicate_lines(nc: Client) -> None:
    scan_id = uuid.uuid4().hex
    feed = [(Stream.STDOUT, f"line {i}".encode()) for i in range(20)]
    for _ in range(2):
        await run_console(Console(nc.jetstream(), scan_id), feed)
    msgs = await messages.output(nc.jetstream(), scan_id)
    assert [m.seq for m in msgs] == list(range(1, 22))


async def test_lines_over_the_queue_bound_are_dropped_and_reported(nc: Client) -> None:
    scan_id = uuid.uuid4().hex
    console = Console(nc.jetstream(), scan_id, max_queued_bytes=4096)
    # Nothing is sent while lines are fed without yielding to the loop, as when the bus stalls.
    feed = [(Stream.STDOUT, b"x" * 100) for _ in range(200)]
    await run_console(console, feed)

    msgs = await messages.output(nc.jetstream(), scan_id)
    kept = 200 - console.dropped
    assert 0 < kept < 200
    assert [m.seq for m in msgs] == list(range(1, kept + 3))
    marker = msgs[kept]
    assert isinstance(marker, OutputLine)
    assert marker.stream is Stream.STDERR
    assert marker.text.startswith(f"[jetscan] {console.dropped} console line(s) dropped")
    assert isinstance(msgs[-1], EndOfOutput)


async def test_a_closed_console_takes_no_lines(nc: Client) -> None:
    console = Console(nc.jetstream(), uuid.uuid4().hex)
    await run_console(console, [])
    with pytest.raises(RuntimeError):
        console.line(Stream.STDOUT, b"late")


async def test_a_console_past_its_cap_is_cut_with_markers_and_stays_gapless(nc: Client) -> None:
    scan_id = uuid.uuid4().hex
    console = Console(nc.jetstream(), scan_id, max_bytes=1000)
    feed = [(Stream.STDOUT, b"%03d" % i + b"." * 97) for i in range(25)]
    await run_console(console, feed)

    msgs = await messages.output(nc.jetstream(), scan_id)
    assert [m.seq for m in msgs] == list(range(1, 14))
    shown = lines_of(msgs)
    # Ten lines of 100 bytes fill the cap exactly; the eleventh is where it is cut.
    assert [m.text[:3] for m in shown[:10]] == [f"{i:03d}" for i in range(10)]
    assert shown[10].stream is Stream.STDERR
    assert shown[10].text.startswith("[jetscan] console cut here: it reached its cap of 1000")
    assert shown[11].text == "[jetscan] 15 console line(s) (1500 bytes) past the cap were not shown"
    assert (console.cut_lines, console.cut_bytes) == (15, 1500)
    assert isinstance(msgs[-1], EndOfOutput)
