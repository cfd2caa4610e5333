"""What the launcher needs from a place that runs scan jobs, and what it hears back.

Two implementations: `local` (a child process per scan, `handlers.launcher.local`) and
`kubernetes` (a batch/v1 Job per scan, `handlers.launcher.kubernetes`). The launcher owns the
bus side (commands, the `launches` guard, lifecycle events); an executor only starts, stops
and watches jobs, and reports each job's end as an `Ending`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from contracts.scans import StartScan
from handlers.launcher.lifecycle import Stop


class Ending(msgspec.Struct, frozen=True, kw_only=True):
    """How a scan's job ended, as the executor saw it. `lifecycle.outcome` judges it.

    `returncode` is the job's exit code (negative for death by signal, as asyncio reports it),
    None when the job never ran or its code is unknown. `cause` is the platform's own word for
    what happened when the exit code alone cannot say it (`OOMKilled`, `DeadlineExceeded`,
    `ImagePullBackOff`, `Forbidden`...), `detail` its message. `attempt` is the scan's launch
    the job ran, when the platform records it (a Kubernetes Job's label); 0 when the executor
    cannot tell (the launcher then goes by what it started).
    """

    scan_id: str
    deadline_seconds: int
    returncode: int | None = None
    stopped: Stop | None = None
    cause: str = ""
    detail: str = ""
    attempt: int = 0


OnExit = Callable[[Ending], Awaitable[None]]


class LaunchRefused(Exception):
    """The platform refused the job for good (no permission, an invalid spec): fail the scan."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


class LaunchUnavailable(Exception):
    """The platform could not be asked right now (5xx, connection refused): try again later."""


class Executor(Protocol):
    async def open(self) -> None:
        """Begin watching jobs (and reconcile with what already runs); before any `start`."""

    def running(self, scan_id: str) -> bool:
        """Whether this executor knows a job of `scan_id` that has not ended."""

    async def start(self, cmd: StartScan, *, attempt: int = 1, console_after: int = 0) -> None:
        """Start the scan's job (its `attempt`, whose console continues after `console_after`);
        raise LaunchRefused or LaunchUnavailable."""

    async def stop(self, scan_id: str, why: Stop) -> bool:
        """Stop the scan's job; False when there is none."""

    async def shutdown(self) -> None:
        """Stop watching; a local executor also stops its jobs, which cannot outlive it."""
