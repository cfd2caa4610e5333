"""Each scan job's own NATS user: valid for its scan's subjects, until its deadline plus grace.

The launcher signs it with the account's jobs signing key (`job-signer.json`), so a job
never holds a role's credentials; a leaked job user expires with its scan.
"""

from __future__ import annotations

import time

from contracts.scans import StartScan
from handlers import permissions
from handlers.natsauth import Signer
from scanners import TOOLS


def expires_at(cmd: StartScan, grace: float, now: float) -> float:
    """When the job's user stops working: the launcher kills the job at deadline + 2 grace."""
    return now + cmd.deadline_seconds + 2 * grace


def issue(
    signer: Signer,
    cmd: StartScan,
    grace: float,
    now: float | None = None,
    *,
    lifetime: float | None = None,
) -> str:
    """The `.creds` text of the job that runs `cmd`: valid until its deadline plus twice
    `grace`, or for `lifetime` seconds when given (a Kubernetes Job's own deadline, which
    counts its image pull too)."""
    allowed = permissions.job(cmd.scan_id, cmd.tool, TOOLS[cmd.tool].output_file)
    at = time.time() if now is None else now
    until = expires_at(cmd, grace, at) if lifetime is None else at + lifetime
    return signer.issue(f"scan-{cmd.scan_id}", allowed, expires=until)
