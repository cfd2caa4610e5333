"""What the benchmarks start: jetscan roles as their own processes, on free local ports."""

from __future__ import annotations

import asyncio
import os
import signal
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
    """`jetscan run ROLE` against the settings' NATS, PostgreSQL and addresses (and their
    OTLP endpoint: tracing on)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_NATS_URL": settings.nats_url,
        "JETSCAN_DATABASE_URL": settings.database_url,
        "JETSCAN_HOME": str(settings.home),
        "JETSCAN_HTTP_ADDR": str(settings.http_addr),
        "JETSCAN_GRPC_ADDR": str(settings.grpc_addr),
        "JETSCAN_LOG_LEVEL": log_level,
        # The benches drive thousands of calls a second with one token: throughput, not the
        # per-token limit that protects a deployment, is what they measure.
        "JETSCAN_START_RATE": "off",
        "JETSCAN_REPORT_RATE": "off",
    }
    if settings.otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = settings.otlp_endpoint
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "run", role, cwd=REPO, env=env
    )


class EmbeddedStack:
    """nats-server and PostgreSQL in `home`, prepared as `jetscan up` prepares them, plus
    the role processes started with `role()`; all stopped on leaving the `async with`."""

    def __init__(self, home: Path, *, nats_sync: str = "always", otlp_endpoint: str = "") -> None:
        from workers.embedded import NatsServer, Postgres

        self._nats = NatsServer(home / "nats", port=0, sync_interval=nats_sync)
        self._postgres = Postgres(home / "postgres")
        self._home = home
        self._otlp_endpoint = otlp_endpoint
        self._roles: list[asyncio.subprocess.Process] = []
        self._names: list[str] = []
        self.settings: Settings | None = None

    async def __aenter__(self) -> Settings:
        from contracts.settings import Address
        from workers.stack import prepare

        try:
            self.settings = Settings(
                home=self._home,
                grpc_addr=Address("127.0.0.1", free_port()),
                http_addr=Address("127.0.0.1", free_port()),
                nats_url=await self._nats.start(),
                database_url=await self._postgres.start(),
                otlp_endpoint=self._otlp_endpoint,
            )
            # Streams, migrations and the admin token, as `jetscan up` applies them.
            await prepare(self.settings)
        except BaseException:
            await self.__aexit__()
            raise
        return self.settings

    async def role(self, name: str, *, log_level: str = "INFO") -> asyncio.subprocess.Process:
        assert self.settings is not None
        proc = await run_role(name, self.settings, log_level=log_level)
        self._roles.append(proc)
        self._names.append(name)
        return proc

    def pids(self) -> dict[str, int]:
        """The stack's processes by name: its roles, `nats-server` and `postgres` (the
        server's first process; its backends are under it)."""
        from bench.cpu import postmaster

        nats = self._nats.pid
        assert nats is not None
        found = {"nats-server": nats, "postgres": postmaster(self._home / "postgres")}
        return found | {name: p.pid for name, p in zip(self._names, self._roles, strict=True)}

    async def __aexit__(self, *exc: object) -> None:
        for proc in self._roles:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
        await self._postgres.stop()
        await self._nats.stop()
