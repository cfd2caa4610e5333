"""The generated gRPC code is what protoc makes of the committed .proto files."""

from __future__ import annotations

import filecmp
from pathlib import Path

from contracts import protogen
from contracts.gen.jetscan import v1


def _diff(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    out = [f"only in committed: {n}" for n in cmp.left_only]
    out += [f"only in regenerated: {n}" for n in cmp.right_only]
    out += [f"differs: {n}" for n in cmp.diff_files]
    # dircmp compares by stat signature first; compare contents for real.
    out += [f"differs: {n}" for n in cmp.same_files if (a / n).read_bytes() != (b / n).read_bytes()]
    for sub in cmp.common_dirs:
        out += [f"{sub}/{line}" for line in _diff(a / sub, b / sub)]
    return out


def test_generated_code_has_not_drifted(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    drift = _diff(protogen.GEN, tmp_path)
    assert not drift, "run `make proto` and commit: " + ", ".join(drift)


def test_status_names_follow_proto3_style() -> None:
    descriptor = v1.ScanStatus.DESCRIPTOR
    values = [v.name for v in descriptor.values]
    assert values == [
        "SCAN_STATUS_UNSPECIFIED",
        "SCAN_STATUS_QUEUED",
        "SCAN_STATUS_LAUNCHING",
        "SCAN_STATUS_RUNNING",
        "SCAN_STATUS_SUCCEEDED",
        "SCAN_STATUS_FAILED",
        "SCAN_STATUS_CANCELLED",
        "SCAN_STATUS_TIMED_OUT",
    ]
