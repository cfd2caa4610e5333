"""What every parser returns: normalised findings plus the tool's own structured data."""

from __future__ import annotations

import msgspec

from contracts.findings import Finding
from contracts.results import ToolData


class ToolOutput(msgspec.Struct, frozen=True, kw_only=True):
    """A parse result. `partial` means the tool stopped early and this is what it got through."""

    findings: tuple[Finding, ...]
    data: ToolData
    partial: bool = False
