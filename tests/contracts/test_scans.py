from __future__ import annotations

import pytest

from contracts.scans import ScanStatus, advance

Q, L, R = ScanStatus.QUEUED, ScanStatus.LAUNCHING, ScanStatus.RUNNING
S, F, C, T = ScanStatus.SUCCEEDED, ScanStatus.FAILED, ScanStatus.CANCELLED, ScanStatus.TIMED_OUT


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        (None, Q, Q),
        (Q, L, L),
        (Q, R, R),
        (L, R, R),
        (R, S, S),
        (Q, C, C),
        (R, T, T),
        (R, L, None),  # late launching
        (R, R, None),  # duplicate
        (L, Q, None),
        (S, F, None),  # the first terminal status wins
        (C, S, None),
        (F, R, None),
        (T, C, None),
    ],
)
def test_advance_only_moves_forward(
    current: ScanStatus | None, incoming: ScanStatus, expected: ScanStatus | None
) -> None:
    assert advance(current, incoming) == expected
