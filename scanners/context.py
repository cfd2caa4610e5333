"""What a job hands a tool's pure argv builder: its work directory, programs, scope, deadline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from scanners.targets import Target


@dataclass(frozen=True, slots=True)
class JobContext:
    """Where and with what a job runs its tool: the fresh work directory (the tool's output
    file and any prepared files live there), the configured path of each external program
    (`JETSCAN_PROGRAMS`, e.g. `zap.sh` or `subfinder`; a program not listed is looked up on
    PATH by its name), the deployment's scope (`JETSCAN_SCOPE`), for tools that discover
    names and must flag those outside it, the scan's deadline in seconds, for tools with
    time limits of their own that must end before the job stops them (None: not known), and
    `pinned`: the address the job resolved the target's name to and checked ("" for a target
    that is an address). A tool connects to that address and never resolves the name again:
    a DNS server that answers differently the second time (rebinding) is never asked.
    """

    workdir: PurePath
    programs: Mapping[str, str] = field(default_factory=dict)
    scope: str = ""
    deadline_seconds: int | None = None
    pinned: str = ""

    def program(self, name: str) -> str:
        return self.programs.get(name) or name


def no_files(config: Any, target: Target, job: JobContext) -> dict[str, bytes]:
    return {}
