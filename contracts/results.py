"""What a scan job leaves behind: its structured result and its liveness heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import msgspec

from contracts.dns import DnsRecon
from contracts.findings import Finding
from contracts.nmap import NmapRun
from contracts.sslyze import SslyzeRun
from contracts.zap import ZapReport

# Grows into a tagged union (`NmapRun | ZapReport | ...`, tag field "kind") as tools are added,
# so one decoder reads any tool's result and `match`es on its type. Every member keeps a default
# for each field, so `{"kind": <tool>}` alone decodes to that tool's empty data.
ToolData: TypeAlias = NmapRun | ZapReport | DnsRecon | SslyzeRun


class ScanResult(msgspec.Struct, frozen=True, kw_only=True):
    """`scan.results.<tool>`: the one structured result of a scan, published by its job.

    `exit_code` is the scanner's, with death by signal N reported as 128 + N. `error` is empty
    only when the scanner exited with an accepted code and its output parsed. `partial` is true
    whenever the result may not be the whole picture (the tool stopped early, or `error` is
    set), so a consumer must not treat a finding missing from it as fixed. `artifact` names the
    raw output in the `artifacts` object store, empty when the tool wrote none.
    """

    scan_id: str
    tool: str
    target: str
    finished_at: datetime
    exit_code: int
    partial: bool
    findings: tuple[Finding, ...]
    data: ToolData
    artifact: str = ""
    error: str = ""
    # A result too big for one message goes out in parts, in order, each with a slice of
    # the findings; only the last carries `data` (or, when even that is too big, names
    # `data_artifact`, the tool data as JSON in the object store).
    part: int = 1
    parts: int = 1
    data_artifact: str = ""


def split(result: ScanResult, max_bytes: int, empty: ToolData) -> list[ScanResult]:
    """`result` as parts whose encodings each stay under `max_bytes` (roughly: findings
    are sliced by their own encoded size, with room left for the envelope).

    The last part keeps `data`; the caller moves oversized data to the object store first.
    """
    if len(msgspec.json.encode(result)) <= max_bytes:
        return [result]
    budget = max(max_bytes // 2, 1)
    slices: list[list[Finding]] = [[]]
    used = 0
    for finding in result.findings:
        size = len(msgspec.json.encode(finding))
        if slices[-1] and used + size > budget:
            slices.append([])
            used = 0
        slices[-1].append(finding)
        used += size
    n = len(slices)
    return [
        msgspec.structs.replace(
            result,
            findings=tuple(chunk),
            data=result.data if i == n else empty,
            part=i,
            parts=n,
        )
        for i, chunk in enumerate(slices, start=1)
    ]


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """The value under key `<scan_id>` in the `heartbeats` bucket, rewritten every few seconds."""

    scan_id: str
    at: datetime
    pid: int
