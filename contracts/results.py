"""What a scan job leaves behind: its structured result and its liveness heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import msgspec

from contracts.coverage import Coverage
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
    # the findings; only the last carries `data` (or, when even that is too big, every part
    # names `data_artifact`, the tool data as JSON in the object store). See workers.spool.
    part: int = 1
    parts: int = 1
    data_artifact: str = ""
    # What the scan looked at (`scanners/<tool>/coverage.py`), on the last part only; None
    # when unknown (a result from before coverage existed): such a scan fixes nothing.
    coverage: Coverage | None = None
    # The scanner's version as its own output names it (`ToolSpec.version`); "" when it does
    # not, or the result is from before versions were recorded.
    scanner_version: str = ""
    # The job's attempt (`JETSCAN_ATTEMPT`): a scan run again after jetscan lost its job
    # publishes its result again; the latest attempt's result is the scan's.
    attempt: int = 1


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """The value under key `<scan_id>` in the `heartbeats` bucket, rewritten every few seconds."""

    scan_id: str
    at: datetime
    pid: int
