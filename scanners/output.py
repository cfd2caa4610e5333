"""What every parser returns: normalised findings plus the tool's own structured data."""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from contracts.findings import Finding
from contracts.nmap import NmapRun

# Grows into a tagged union (`NmapRun | ZapReport | ...`, tag field "kind") as tools are added,
# so one decoder can read any tool's result and `match` on its type.
ToolData: TypeAlias = NmapRun


class ToolOutput(msgspec.Struct, frozen=True, kw_only=True):
    """A parse result. `partial` means the tool stopped early and this is what it got through."""

    findings: tuple[Finding, ...]
    data: ToolData
    partial: bool = False
