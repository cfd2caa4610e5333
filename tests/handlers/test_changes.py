"""The change rules as a pure function: previous state + coverage + findings → changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from handlers.ingest.changes import (
    Change,
    Prior,
    ScanFacts,
    State,
    changes,
    derive,
    on_missed,
    on_seen,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def t(n: int) -> datetime:
    return T0 + timedelta(hours=n)


OPEN = State.OPEN
FIXED = State.FIXED


@pytest.mark.parametrize(
    ("prior", "at", "change", "state", "decided"),
    [
        # never seen: new, whenever the scan ran
        (None, t(5), Change.NEW, OPEN, True),
        # open and seen again by a newer scan
        (Prior(OPEN, t(1)), t(2), Change.UNCHANGED, OPEN, True),
        # fixed by an older scan, seen by a newer one: reopened
        (Prior(FIXED, t(1)), t(2), Change.REOPENED, OPEN, True),
        # fixed by a newer scan than this late result: stays fixed
        (Prior(FIXED, t(3)), t(2), Change.UNCHANGED, FIXED, False),
        # a replay of the scan that decided: nothing moves
        (Prior(FIXED, t(2)), t(2), Change.UNCHANGED, FIXED, False),
        (Prior(OPEN, t(2)), t(2), Change.UNCHANGED, OPEN, False),
        # open, decided by a newer scan: an older sighting changes nothing
        (Prior(OPEN, t(3)), t(1), Change.UNCHANGED, OPEN, False),
    ],
)
def test_a_seen_finding(
    prior: Prior | None, at: datetime, change: Change, state: State, decided: bool
) -> None:
    seen = on_seen(prior, at)
    assert (seen.change, seen.state, seen.decided) == (change, state, decided)


@pytest.mark.parametrize(
    ("prior", "at", "fixed"),
    [
        (Prior(OPEN, t(1)), t(2), True),
        (Prior(OPEN, t(2)), t(2), False),  # replay of the deciding scan
        (Prior(OPEN, t(3)), t(2), False),  # a newer scan saw it open
        (Prior(FIXED, t(1)), t(2), False),  # already fixed
    ],
)
def test_a_covered_finding_not_seen(prior: Prior, at: datetime, fixed: bool) -> None:
    assert on_missed(prior, at) is fixed


def test_the_issue_sequence_of_scans() -> None:
    """Two open ports; close one; open a third; reopen the first; a subset scan."""
    state: dict[str, Prior] = {}
    everything = {"22", "80", "443", "8080"}

    def scan(at: datetime, seen: set[str], covered: set[str], complete: bool = True) -> dict:
        out = changes(state, seen, covered.__contains__, at, complete=complete)
        for fp, change in out.items():
            state[fp] = Prior(FIXED if change is Change.FIXED else OPEN, at)
        return out

    assert scan(t(1), {"22", "80"}, everything) == {"22": Change.NEW, "80": Change.NEW}
    assert scan(t(2), {"80"}, everything) == {"80": Change.UNCHANGED, "22": Change.FIXED}
    assert scan(t(3), {"80", "443"}, everything) == {
        "80": Change.UNCHANGED,
        "443": Change.NEW,
    }
    assert scan(t(4), {"22", "80", "443"}, everything) == {
        "22": Change.REOPENED,
        "80": Change.UNCHANGED,
        "443": Change.UNCHANGED,
    }
    # A scan of port 22 only says nothing about 80 and 443.
    assert scan(t(5), set(), {"22"}) == {"22": Change.FIXED}
    assert state["80"].state is OPEN and state["443"].state is OPEN
    # An incomplete scan (cancelled, partial, failed) fixes nothing.
    assert scan(t(6), set(), everything, complete=False) == {}
    assert state["80"].state is OPEN


def test_a_late_result_never_undoes_what_a_newer_scan_decided() -> None:
    state = {"22": Prior(FIXED, t(5)), "80": Prior(OPEN, t(5)), "443": Prior(OPEN, t(1))}
    late = changes(state, {"22"}, lambda fp: True, t(3), complete=True)
    # It saw 22 (fixed at t5: not reopened), missed 80 (seen open at t5: not fixed), and
    # is the newest word on 443 (last decided at t1): that one it fixes.
    assert late == {"22": Change.UNCHANGED, "443": Change.FIXED}


def test_replaying_a_result_changes_nothing() -> None:
    state = {"22": Prior(OPEN, t(1))}
    first = changes(state, {"80"}, lambda fp: True, t(2), complete=True)
    assert first == {"80": Change.NEW, "22": Change.FIXED}
    after = {"22": Prior(FIXED, t(2)), "80": Prior(OPEN, t(2))}
    again = changes(after, {"80"}, lambda fp: True, t(2), complete=True)
    assert again == {"80": Change.UNCHANGED}


def facts(
    scan_id: str, at: datetime, seen: set[str], covered: set[str], complete: bool = True
) -> ScanFacts:
    return ScanFacts(
        scan_id=scan_id,
        at=at,
        seen={fp: f"body of {fp} in {scan_id}" for fp in seen},
        complete=complete,
        covered=covered.__contains__,
    )


def test_derive_gives_the_same_history_in_any_order() -> None:
    every = {"22", "80", "443"}
    scans = [
        facts("s1", t(1), {"22", "80"}, every),
        facts("s2", t(2), {"80"}, every),
        facts("s3", t(3), {"22", "80"}, every),
        facts("s4", t(4), set(), every, complete=False),
        facts("s5", t(5), {"22"}, {"22"}),
    ]
    tracks, per_scan = derive(scans)
    assert per_scan == {
        "s1": {"22": Change.NEW, "80": Change.NEW},
        "s2": {"80": Change.UNCHANGED, "22": Change.FIXED},
        "s3": {"22": Change.REOPENED, "80": Change.UNCHANGED},
        "s4": {},
        "s5": {"22": Change.UNCHANGED},
    }
    assert (tracks["22"].state, tracks["22"].reopened, tracks["22"].fixed_at) == (OPEN, 1, None)
    assert (tracks["22"].first_seen, tracks["22"].last_seen) == (t(1), t(5))
    assert (tracks["80"].last_scan_id, tracks["80"].body) == ("s3", "body of 80 in s3")
    assert derive(reversed(scans)) == (tracks, per_scan)
