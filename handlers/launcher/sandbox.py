"""How the local executor confines a scan job: its own user, no new privileges, limits.

A scan job parses what hostile hosts send; it must not run with jetscan's privileges (root,
when jetscan runs as root). The job runs through `setpriv` (util-linux) as the unprivileged
`JETSCAN_JOB_USER` with no supplementary groups and `PR_SET_NO_NEW_PRIVS`, so neither it nor
its scanner can gain privileges through a setuid binary or file capabilities. An nmap syn
scan gets exactly CAP_NET_RAW as an ambient capability (its bounding set holds nothing
else), and `NMAP_PRIVILEGED=1` so nmap uses it without being root. Resource limits apply to
the job and everything it starts (set before exec, inherited):

| limit | value |
|---|---|
| RLIMIT_AS | `JETSCAN_JOB_MEMORY_MB` of address space |
| RLIMIT_NPROC | 512 processes of the job user (shared by its concurrent jobs) |
| RLIMIT_NOFILE | 4096 open files |
| RLIMIT_CPU | deadline + twice the launcher's grace, in CPU seconds (at most the wall time) |
| RLIMIT_CORE | 0: no core files with a scan's secrets |

Pure except `resolve`, which looks the user up.
"""

from __future__ import annotations

import os
import pwd
import resource
from collections.abc import Callable

import msgspec

from contracts.scans import StartScan
from handlers.launcher.manifest import raw_sockets

SETPRIV = "/usr/bin/setpriv"
MAX_PROCESSES = 512
MAX_OPEN_FILES = 4096


class SandboxError(Exception):
    """The job user does not exist or cannot be switched to."""


class Sandbox(msgspec.Struct, frozen=True, kw_only=True):
    """Who a job runs as (None: as the launcher, when it is not root) and its memory."""

    uid: int | None = None
    gid: int | None = None
    memory_bytes: int = 2 << 30


def resolve(user: str, memory_mb: int) -> Sandbox:
    """The sandbox for `user`; a launcher that is not root cannot switch users and keeps its
    own (it has no privileges to drop), but still sets no-new-privileges and the limits."""
    memory = memory_mb << 20
    if not user or os.geteuid() != 0:
        return Sandbox(memory_bytes=memory)
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SandboxError(
            f"job user {user!r} does not exist: run `jetscan up` as root once to create it, "
            "or `useradd --system --no-create-home --shell /usr/sbin/nologin {user}`"
        ) from None
    if entry.pw_uid == 0:
        raise SandboxError(f"job user {user!r} is root")
    return Sandbox(uid=entry.pw_uid, gid=entry.pw_gid, memory_bytes=memory)


def argv(sandbox: Sandbox, cmd: StartScan, program: list[str]) -> list[str]:
    """`program` wrapped in `setpriv` with the job's user, groups and capabilities."""
    wrapped = [SETPRIV, "--no-new-privs"]
    if sandbox.uid is not None and sandbox.gid is not None:
        wrapped += [f"--reuid={sandbox.uid}", f"--regid={sandbox.gid}", "--clear-groups"]
        if raw_sockets(cmd):
            caps = "-all,+net_raw"
            wrapped += [f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}"]
        else:
            wrapped += ["--inh-caps=-all", "--bounding-set=-all"]
    return [*wrapped, "--", *program]


def environ(cmd: StartScan) -> dict[str, str]:
    """Variables the sandbox adds: nmap uses a granted CAP_NET_RAW only when told to."""
    return {"NMAP_PRIVILEGED": "1"} if raw_sockets(cmd) else {}


def limits(sandbox: Sandbox, cmd: StartScan, grace: float) -> dict[int, int]:
    """The resource limits (soft = hard) of the job that runs `cmd`."""
    return {
        resource.RLIMIT_AS: sandbox.memory_bytes,
        resource.RLIMIT_NPROC: MAX_PROCESSES,
        resource.RLIMIT_NOFILE: MAX_OPEN_FILES,
        resource.RLIMIT_CPU: int(cmd.deadline_seconds + 2 * grace),
        resource.RLIMIT_CORE: 0,
    }


def apply_limits(wanted: dict[int, int]) -> Callable[[], None]:
    """A function for a child about to exec that sets `wanted`."""

    def set_them() -> None:
        for which, value in wanted.items():
            resource.setrlimit(which, (value, value))

    return set_them
