"""Whether a result is the one its scan's start command asked for. Pure.

A job's NATS user may publish only its own result subject (`scan.results.<tool>.<scan_id>`),
but ingest checks the body too: a result whose scan id, tool or target differs from the
subject or from the scan's start command is parked, never stored.
"""

from __future__ import annotations

from contracts.results import ScanResult
from scanners import TOOLS
from scanners.errors import TargetError
from scanners.targets import parse_target


def mismatch(subject: str, result: ScanResult, tool: str, target: str) -> str:
    """Why `result`, received on `subject`, is not the result of the scan started as `tool`
    on `target`; "" when it is."""
    parts = subject.split(".")
    if len(parts) >= 3 and parts[2] != result.tool:
        return f"result for tool {result.tool!r} published on {subject}"
    if len(parts) >= 4 and parts[3] != result.scan_id:
        return f"result for scan {result.scan_id!r} published on {subject}"
    if result.tool != tool:
        return f"scan {result.scan_id} was started for {tool!r}, the result is from {result.tool!r}"
    spec = TOOLS.get(tool)
    try:
        wanted = parse_target(target, allowed_kinds=spec.target_kinds).value if spec else target
    except TargetError:
        wanted = target
    if result.target != wanted:
        return (
            f"scan {result.scan_id} was started on {wanted!r}, the result is for {result.target!r}"
        )
    return ""
