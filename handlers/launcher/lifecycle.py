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
JOB_UNREACHED = 6
JOB_DEADLINE = 124

# What a platform reports that an exit code cannot say, in Kubernetes' own words.
DEADLINE_EXCEEDED = "DeadlineExceeded"
OOM_KILLED = "OOMKilled"

_REASONS = {
    JOB_BAD_ENV: "the job rejected its environment (a bug or a version mismatch)",
    JOB_SCANNER_FAILED: "the scanner failed (see the scan's console and result)",
    JOB_BAD_OUTPUT: "the scanner's output was missing or unreadable",
    JOB_NATS: "the job could not reach NATS",
    JOB_UNREACHED: "the scan reached nothing",
}


class Stop(enum.StrEnum):
    """Why the launcher stopped a job before it ended by itself."""

    CANCELLED = "cancelled"
    DEADLINE = "deadline"
    SHUTDOWN = "shutdown"
    # The scan ended, or went back to the queue, without this job (liveness declared it
    # lost, a cancel raced its launch): its end is not the scan's.
    SUPERSEDED = "superseded"


def outcome(
    returncode: int | None,
    stopped: Stop | None,
    deadline_seconds: int,
    *,
    cause: str = "",
    detail: str = "",
) -> tuple[ScanStatus, str]:
    """The terminal status and reason for a job that ended with `returncode`.

    `returncode` is as asyncio reports it (negative for death by signal), or None when the job
    never ran or its code is unknown. `cause` and `detail` are what the platform said about
    the end (see `executor.Ending`); the reason keeps the platform's word so an operator can
    search for it.
    """
    if stopped is Stop.CANCELLED:
        return ScanStatus.CANCELLED, "cancelled on request"
    if stopped is Stop.DEADLINE or returncode == JOB_DEADLINE or cause == DEADLINE_EXCEEDED:
        reason = f"deadline of {deadline_seconds}s passed"
        return ScanStatus.TIMED_OUT, f"{reason} ({cause})" if cause else reason
    if stopped is Stop.SHUTDOWN:
        return ScanStatus.FAILED, "interrupted: the launcher stopped"
    if cause == OOM_KILLED:
        return ScanStatus.FAILED, _joined(f"{OOM_KILLED}: the job ran out of memory", detail)
    if returncode is None:
        return ScanStatus.FAILED, _joined(cause or LOST, detail or "the job's exit code is unknown")
    if returncode == JOB_OK:
        return ScanStatus.SUCCEEDED, ""
    # Death by signal N shows as -N, or as 128 + N when the job caught it and exited.
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum:
        name = signal.Signals(signum).name if signum in signal.valid_signals() else ""
        reason = f"{LOST}: the job was killed by signal {signum} {name}".rstrip()
        return ScanStatus.FAILED, _joined(reason, f"{cause}: {detail}" if cause else detail)
    return ScanStatus.FAILED, _REASONS.get(returncode, f"the job exited with code {returncode}")


def infrastructure_loss(
    returncode: int | None, stopped: Stop | None, *, cause: str = "", detail: str = ""
) -> bool:
    """Whether a job that ended so was lost because jetscan failed (its launcher stopped, the
    job or its node was killed, the job could not reach NATS), so the scan may run again;
    never for the scanner's own failure, a deadline, a cancel or a platform's refusal."""
    status, reason = outcome(returncode, stopped, 0, cause=cause, detail=detail)
    if status is not ScanStatus.FAILED:
        return False
    if stopped is Stop.SHUTDOWN or returncode == JOB_NATS:
        return True
    return stopped is None and cause in ("", LOST) and reason.startswith(LOST)


def _joined(reason: str, detail: str) -> str:
    return f"{reason}: {detail}" if detail else reason
