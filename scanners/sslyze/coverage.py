"""What a finished sslyze scan covered, and whether it reached anything at all. Pure.

An sslyze scan covers its endpoint (the scan's target is one `HOST:PORT`), but only when it
ran every check: the findings do not say which scan command produced them, so a scan of a
subset of the commands fixes nothing. A server sslyze could not connect to ("Server rejected
the connection; discarding scan") was not reached: the scan must fail, not report all-clear.
"""

from __future__ import annotations

from contracts.coverage import Coverage
from contracts.sslyze import SslyzeRun
from scanners.sslyze.config import ALL_SCAN_COMMANDS, SslyzeConfig
from scanners.targets import Target


def coverage(config: SslyzeConfig, target: Target, data: SslyzeRun) -> Coverage:
    return Coverage(everything=set(config.scan_commands) >= set(ALL_SCAN_COMMANDS))


def unreached(data: SslyzeRun) -> str:
    if any(server.connected for server in data.servers):
        return ""
    why = [s.error for s in data.servers if s.error] + [n.reason for n in data.not_scanned]
    detail = f": {'; '.join(dict.fromkeys(why))}" if why else ""
    return f"sslyze reached nothing{detail}"
