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


def test_a_big_result_splits_into_ordered_parts_under_the_limit() -> None:
    from datetime import UTC, datetime

    import msgspec

    from contracts.findings import Finding, Severity
    from contracts.nmap import NmapRun
    from contracts.results import ScanResult, split

    findings = tuple(
        Finding(
            tool="nmap",
            severity=Severity.INFO,
            title=f"Open port {i}",
            fingerprint=f"{i:064x}",
            description="x" * 200,
        )
        for i in range(3000)
    )
    result = ScanResult(
        scan_id="s",
        tool="nmap",
        target="127.0.0.1",
        finished_at=datetime.now(UTC),
        exit_code=0,
        partial=False,
        findings=findings,
        data=NmapRun(version="7.93"),
    )
    limit = 64 << 10
    parts = split(result, limit, NmapRun())
    assert len(parts) > 5
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))
    assert {p.parts for p in parts} == {len(parts)}
    assert all(len(msgspec.json.encode(p)) <= limit for p in parts)
    assert tuple(f for p in parts for f in p.findings) == findings
    assert parts[-1].data == result.data
    assert all(p.data == NmapRun() for p in parts[:-1])
    assert split(msgspec.structs.replace(result, findings=findings[:3]), limit, NmapRun()) == [
        msgspec.structs.replace(result, findings=findings[:3])
    ]
