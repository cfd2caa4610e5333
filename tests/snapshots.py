"""Snapshot files: compared byte for byte; written only when asked for, never under CI.

`JETSCAN_UPDATE_SNAPSHOTS=1` rewrites snapshots (and removes orphaned ones); without it a
missing snapshot fails like a changed one, so a snapshot that was never committed cannot
pass by being written on the spot. Under CI (`CI` set to anything but "", "0" or "false")
updating is refused: a run there only compares. `make test` also fails when a run leaves
`tests/` changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest

UPDATE = "JETSCAN_UPDATE_SNAPSHOTS"


def updating() -> bool:
    """Whether snapshots are to be rewritten; fails the test when asked for under CI."""
    if os.environ.get(UPDATE) != "1":
        return False
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        pytest.fail(f"{UPDATE}=1 under CI: snapshots are updated on a developer's machine only")
    return True


def assert_snapshot(path: Path, actual: bytes) -> None:
    if updating():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
        return
    if not path.exists():
        pytest.fail(
            f"snapshot {path} is missing: run with {UPDATE}=1 to write it, review it and commit it"
        )
    if path.read_bytes() != actual:
        pytest.fail(
            f"{path.name} differs from its snapshot; if the change is intended, rerun with "
            f"{UPDATE}=1 and review the diff"
        )


def assert_no_orphans(directory: Path, expected: Iterable[str]) -> None:
    """Every snapshot file in `directory` belongs to a case: one whose input is gone (a
    corpus file renamed or removed) would otherwise be kept and checked by nothing."""
    orphans = sorted({p.name for p in directory.glob("*.json")} - set(expected))
    if orphans and updating():
        for name in orphans:
            (directory / name).unlink()
        return
    assert orphans == [], (
        f"snapshots in {directory} without a case: {orphans}; remove them, or run with {UPDATE}=1"
    )
