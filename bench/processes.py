"""What the benchmarks start: jetscan roles as their own processes, on free local ports."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from contracts.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_role(
    role: str, settings: Settings, *, log_level: str = "INFO"
) -> asyncio.subprocess.Process:
    """`jetscan run ROLE` against the settings' NATS, PostgreSQL and addresses."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_NATS_URL": settings.nats_url,
        "JETSCAN_DATABASE_URL": settings.database_url,
        "JETSCAN_HOME": str(settings.home),
        "JETSCAN_HTTP_ADDR": str(settings.http_addr),
        "JETSCAN_GRPC_ADDR": str(settings.grpc_addr),
        "JETSCAN_LOG_LEVEL": log_level,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "run", role, cwd=REPO, env=env
    )
