"""Snapshot files: compared byte for byte, rewritten with JETSCAN_UPDATE_SNAPSHOTS=1.

A missing snapshot is written on a developer's machine, but fails under CI, so a
snapshot that was never committed cannot pass silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def assert_snapshot(path: Path, actual: bytes) -> None:
    if os.environ.get("JETSCAN_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
        return
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"snapshot {path} is missing (commit it)")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
        return
    expected = path.read_bytes()
    if expected != actual:
        pytest.fail(
            f"{path.name} differs from its snapshot; if the change is intended, rerun with "
            "JETSCAN_UPDATE_SNAPSHOTS=1 and review the diff"
        )
