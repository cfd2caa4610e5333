"""What a scan changed about the findings of its tool on its target. Pure.

A finding's state is decided by the newest scan that looked at it, in the order of the
scans' observation times (their results' `finished_at`), not in the order their results
arrive: a replayed or late result of an older scan records that it saw a finding, but never
reopens or fixes what a newer scan decided.

- Seen by the scan: `new` when the finding was never seen before; `reopened` when it was
  fixed and this scan is newer than the one that fixed it; else `unchanged`.
- Covered by the scan and not seen: `fixed` when it is open, this scan is newer than the one
  that last decided it, and the scan is complete (succeeded, whole result, coverage known).
- Anything else (not covered, or an incomplete scan) is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from contracts.tracking import Change
from contracts.tracking import FindingState as State

__all__ = [
    "Change",
    "Prior",
    "ScanFacts",
    "Seen",
    "State",
    "Track",
    "changes",
    "derive",
    "on_missed",
    "on_seen",
]


@dataclass(frozen=True, slots=True)
class Prior:
    """A finding as it stands before the scan: its state and when that was decided."""

    state: State
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class Seen:
    """The outcome for a finding the scan saw: its change, and its state from now on
    (`decided` is false when an older scan's sighting leaves the state as it was)."""

    change: Change
    state: State
    decided: bool


def on_seen(prior: Prior | None, at: datetime) -> Seen:
    if prior is None:
        return Seen(Change.NEW, State.OPEN, True)
    if at <= prior.decided_at:
        return Seen(Change.UNCHANGED, prior.state, False)
    if prior.state is State.FIXED:
        return Seen(Change.REOPENED, State.OPEN, True)
    return Seen(Change.UNCHANGED, State.OPEN, True)


def on_missed(prior: Prior, at: datetime) -> bool:
    """Whether a complete scan at `at` that covered the finding and did not see it fixes it."""
    return prior.state is State.OPEN and at > prior.decided_at


def changes(
    previous: Mapping[str, Prior],
    seen: Iterable[str],
    covered: Callable[[str], bool],
    at: datetime,
    *,
    complete: bool,
) -> dict[str, Change]:
    """Every change a scan at `at` makes: `previous` maps the fingerprints known for the
    tool and target to their state, `seen` are the scan's fingerprints, `covered` says
    whether the scan looked for a fingerprint, `complete` whether it may fix anything."""
    out = {fp: on_seen(previous.get(fp), at).change for fp in seen}
    if complete:
        for fp, prior in previous.items():
            if fp not in out and covered(fp) and on_missed(prior, at):
                out[fp] = Change.FIXED
    return out


@dataclass(frozen=True, slots=True)
class ScanFacts:
    """One scan of a tool and target as re-derivation sees it: when it observed, what it saw
    (fingerprint → finding body), whether it may fix, and which fingerprints it covered."""

    scan_id: str
    at: datetime
    seen: Mapping[str, object]
    complete: bool
    covered: Callable[[str], bool]


@dataclass(slots=True)
class Track:
    """A finding's state as the scans so far left it."""

    state: State
    decided_at: datetime
    first_seen: datetime
    last_seen: datetime
    last_scan_id: str
    body: object
    fixed_at: datetime | None = None
    reopened: int = 0


def derive(scans: Iterable[ScanFacts]) -> tuple[dict[str, Track], dict[str, dict[str, Change]]]:
    """Every finding's state and every scan's changes, from the scans alone, in the order of
    their observation times: what ingest computes incrementally, computed whole (re-derivation
    after a parser change). The same scans give the same answer, whatever their order here."""
    tracks: dict[str, Track] = {}
    per_scan: dict[str, dict[str, Change]] = {}
    for scan in sorted(scans, key=lambda s: (s.at, s.scan_id)):
        previous = {fp: Prior(t.state, t.decided_at) for fp, t in tracks.items()}
        out = changes(previous, scan.seen, scan.covered, scan.at, complete=scan.complete)
        for fp, change in out.items():
            track = tracks.get(fp)
            if change is Change.FIXED:
                assert track is not None
                track.state, track.decided_at, track.fixed_at = State.FIXED, scan.at, scan.at
                continue
            if track is None:
                tracks[fp] = Track(
                    State.OPEN, scan.at, scan.at, scan.at, scan.scan_id, scan.seen[fp]
                )
                continue
            if change is Change.REOPENED:
                track.reopened += 1
                track.fixed_at = None
            track.state, track.decided_at = State.OPEN, scan.at
            track.last_seen, track.last_scan_id, track.body = scan.at, scan.scan_id, scan.seen[fp]
        per_scan[scan.scan_id] = out
    return tracks, per_scan
