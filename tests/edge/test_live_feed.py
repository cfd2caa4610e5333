"""The pure parts of the live console: ordering lines and applying events to a view."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.output import OutputLine, Stream
from contracts.scans import ScanEvent, ScanStatus, ScanView
from edge import ws
from edge.console import Sequencer, applied

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def line(seq: int) -> OutputLine:
    return OutputLine(scan_id="s", seq=seq, time=T0, stream=Stream.STDOUT, text=f"line {seq}")


def seqs(lines: list[OutputLine]) -> list[int]:
    return [ln.seq for ln in lines]


@pytest.mark.parametrize(
    ("after", "arrivals", "expected", "gap"),
    [
        (0, [1, 2, 3], [1, 2, 3], None),
        (0, [2, 3, 1], [1, 2, 3], None),
        (0, [1, 1, 2, 2], [1, 2], None),
        (0, [3, 4], [], (1, 2)),
        (2, [1, 2, 3, 5], [3], (4, 4)),
        (10, [9, 10, 11], [11], None),
    ],
)
def test_sequencer_emits_contiguous_lines_once(
    after: int, arrivals: list[int], expected: list[int], gap: tuple[int, int] | None
) -> None:
    s = Sequencer(after)
    out = []
    for seq in arrivals:
        s.add(line(seq))
        out += s.ready()
    assert seqs(out) == expected
    assert s.gap() == gap


def test_sequencer_skips_a_gap_given_up_on() -> None:
    s = Sequencer()
    s.add(line(5))
    s.add(line(6))
    assert s.ready() == []
    s.skip()
    assert seqs(s.ready()) == [5, 6]
    s.add(line(4))  # too late now: never sent out of order
    assert s.ready() == [] and s.held == 0


def view(status: ScanStatus) -> ScanView:
    return ScanView(
        id="s",
        target="127.0.0.1",
        domain="127.0.0.1",
        tool="nmap",
        config={},
        status=status,
        created_at=T0,
        deadline_seconds=60,
    )


def test_applied_moves_forward_only() -> None:
    running = applied(
        view(ScanStatus.QUEUED), ScanEvent(scan_id="s", status=ScanStatus.RUNNING, at=T0)
    )
    assert running is not None and running.status is ScanStatus.RUNNING
    assert running.started_at == T0
    done = applied(
        running, ScanEvent(scan_id="s", status=ScanStatus.FAILED, at=T0, exit_code=3, reason="x")
    )
    assert done is not None
    assert (done.status, done.exit_code, done.error, done.finished_at) == (
        ScanStatus.FAILED,
        3,
        "x",
        T0,
    )
    assert applied(done, ScanEvent(scan_id="s", status=ScanStatus.RUNNING, at=T0)) is None


def test_frames_are_the_documented_json() -> None:
    assert ws.encode(line(7)) == (
        '{"type":"line","seq":7,"time":"2026-05-01T00:00:00Z","stream":"stdout","text":"line 7"}'
    )
    assert ws.encode(view(ScanStatus.RUNNING)).startswith('{"type":"status","scan":{"id":"s",')
