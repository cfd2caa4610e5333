"""Scanner versions of scans from before results recorded them (`scans.scanner_version`),
where the tool's console names it: PostgreSQL keeps each scan's first console lines."""

from __future__ import annotations

import re

# The line a tool prints near its start, by tool. Only what was seen in a real run is here:
# nmap's "Starting Nmap 7.93 ( https://nmap.org ) at ...".
_BANNERS = {"nmap": re.compile(r"^Starting Nmap (\S+)")}
# How many first lines of a console are read for it.
HEAD_LINES = 20


def scanner_version(tool: str, head: list[str]) -> str:
    """The scanner version in the first console lines of a scan of `tool`, else ""."""
    banner = _BANNERS.get(tool)
    if banner is None:
        return ""
    for line in head:
        if m := banner.match(line.strip()):
            return m[1]
    return ""
