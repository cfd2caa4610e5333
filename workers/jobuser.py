"""The unprivileged user local scan jobs run as, created by `jetscan up` when run as root."""

from __future__ import annotations

import os
import pwd
import subprocess


def ensure(name: str) -> bool:
    """Create system user `name` (no home, no shell, its own group) if missing and if this
    process may; return whether it was created."""
    if not name or os.geteuid() != 0:
        return False
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=True,
        capture_output=True,
    )
    return True
