"""How a finished job's exit becomes the scan's terminal status. Pure."""

from __future__ import annotations

import enum
import signal

from contracts.scans import LOST, ScanStatus

# Exit codes of the job runtime (`workers.job`), as the launcher reads them.
JOB_OK = 0
JOB_BAD_ENV = 2
JOB_SCANNER_FAILED = 3
JOB_BAD_OUTPUT = 4
JOB_NATS = 5
JOB_DEADLINE = 124

_REASONS = {
    JOB_BAD_ENV: "the job rejected its environment (a bug or a version mismatch)",
    JOB_SCANNER_FAILED: "the scanner failed (see the scan's console and result)",
    JOB_BAD_OUTPUT: "the scanner's output was missing or unreadable",
    JOB_NATS: "the job could not reach NATS",
}


class Stop(enum.StrEnum):
    """Why the launcher stopped a job before it ended by itself."""

    CANCELLED = "cancelled"
    DEADLINE = "deadline"
    SHUTDOWN = "shutdown"


def outcome(returncode: int, stopped: Stop | None, deadline_seconds: int) -> tuple[ScanStatus, str]:
    """The terminal status and reason for a job that exited with `returncode`.

    `returncode` is as asyncio reports it: negative for death by signal.
    """
    if stopped is Stop.CANCELLED:
        return ScanStatus.CANCELLED, "cancelled on request"
    if stopped is Stop.DEADLINE or returncode == JOB_DEADLINE:
        return ScanStatus.TIMED_OUT, f"deadline of {deadline_seconds}s passed"
    if stopped is Stop.SHUTDOWN:
        return ScanStatus.FAILED, "interrupted: the launcher stopped"
    if returncode == JOB_OK:
        return ScanStatus.SUCCEEDED, ""
    # Death by signal N shows as -N, or as 128 + N when the job caught it and exited.
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum:
        name = signal.Signals(signum).name if signum in signal.valid_signals() else ""
        return ScanStatus.FAILED, f"{LOST}: the job was killed by signal {signum} {name}".rstrip()
    reason = _REASONS.get(returncode, f"the job exited with code {returncode}")
    return ScanStatus.FAILED, reason
