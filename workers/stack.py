"""`jetscan up`: embedded NATS and PostgreSQL (unless URLs are given), then every role."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import asyncpg
import msgspec
import nats

from contracts.settings import ROLES, Address, Settings
from handlers import database, topology
from workers import jobuser, natscreds, tokens
from workers.embedded import NatsServer, Postgres

log = logging.getLogger(__name__)


async def prepare(settings: Settings) -> list[str]:
    """Apply streams.yaml, the SQL migrations and the admin token; return what changed."""
    creds = settings.nats_creds_for("admin")
    nc = await nats.connect(settings.nats_url, name="jetscan-setup", user_credentials=creds or None)
    try:
        js = nc.jetstream()
        changes = [str(c) for c in await topology.apply(js, topology.load())]
        if await tokens.ensure_admin_token(js, settings.admin_token_path):
            changes.append(f"created admin token in {settings.admin_token_path}")
    finally:
        await nc.drain()
    conn = await asyncpg.connect(settings.database_url)
    try:
        changes.extend(f"applied migration {m}" for m in await database.migrate(conn))
    finally:
        await conn.close()
    return changes


async def up(settings: Settings, stop: asyncio.Event) -> None:
    nats_server: NatsServer | None = None
    postgres: Postgres | None = None
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        if settings.embedded_nats:
            # Nothing connects anonymously: every role gets its own user (natscreds).
            auth_dir = settings.nats_auth_dir
            auth = natscreds.ensure(auth_dir)
            nats_server = NatsServer(settings.home / "nats", settings.nats_port, auth=auth)
            settings = msgspec.structs.replace(
                settings,
                nats_url=await nats_server.start(),
                nats_creds=str(auth_dir / "creds"),
                nats_job_signer=str(auth_dir / "creds" / natscreds.JOB_SIGNER),
            )
            (settings.home / "nats.url").write_text(settings.nats_url + "\n")
        if settings.embedded_database:
            postgres = Postgres(settings.home / "postgres")
            settings = msgspec.structs.replace(settings, database_url=await postgres.start())
            (settings.home / "database.url").write_text(settings.database_url + "\n")
        if jobuser.ensure(settings.job_user):
            log.info("created system user %s for local scan jobs", settings.job_user)
        for change in await prepare(settings):
            log.info("%s", change)
        roles = asyncio.create_task(_run_roles(settings, stop))
        waiting = asyncio.create_task(
            wait_listening(settings.grpc_addr, settings.http_addr, settings.metrics_addr)
        )
        await asyncio.wait({roles, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if waiting.done() and not waiting.exception():
            _announce(settings)
        else:
            waiting.cancel()
        await roles
    finally:
        if postgres is not None:
            await postgres.stop()
        if nats_server is not None:
            await nats_server.stop()
        for name in ("nats.url", "database.url"):
            (settings.home / name).unlink(missing_ok=True)


async def _run_roles(settings: Settings, stop: asyncio.Event) -> None:
    from workers import health
    from workers.roles import supervise

    up: set[str] = set()
    server = await health.listen(settings.metrics_addr, list(ROLES), up, "JETSCAN_METRICS_ADDR")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(supervise(settings, list(ROLES), stop, up=up))
        tg.create_task(health.serve(server, stop))


async def wait_listening(*addrs: Address, timeout: float = 30.0) -> None:
    """Return once every address accepts TCP connections; OSError after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for addr in addrs:
        while True:
            try:
                _, writer = await asyncio.open_connection(addr.host, addr.port)
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            break


def _announce(settings: Settings) -> None:
    # The one place jetscan writes to stdout for people: where to point clients.
    lines = [
        f"jetscan is up: gRPC {settings.grpc_addr}  web http://{settings.http_addr}/",
        f"  metrics http://{settings.metrics_addr}/metrics",
        f"  NATS {settings.nats_url}"
        + (f" (credentials: {settings.nats_creds})" if settings.nats_creds else ""),
        f"  admin token in {settings.admin_token_path}",
        "  Ctrl-C stops everything.",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
