"""What a scan job leaves behind: its structured result and its liveness heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import msgspec

from contracts.findings import Finding
from contracts.nmap import NmapRun

# Grows into a tagged union (`NmapRun | ZapReport | ...`, tag field "kind") as tools are added,
# so one decoder reads any tool's result and `match`es on its type. Every member keeps a default
# for each field, so `{"kind": <tool>}` alone decodes to that tool's empty data.
ToolData: TypeAlias = NmapRun


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


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """The value under key `<scan_id>` in the `heartbeats` bucket, rewritten every few seconds."""

    scan_id: str
    at: datetime
    pid: int
