"""The `jetscan` command: the process entry point and composition root."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from contracts.auth import Role
from contracts.settings import ROLES, Settings, SettingsError, load
from workers import health, logs, telemetry, usercli
from workers.tables import table

log = logging.getLogger("jetscan")

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jetscan", description="Security scanning on NATS JetStream")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run everything with embedded NATS and PostgreSQL")
    run = sub.add_parser("run", help="run one role alone (how a cluster deploys them)")
    run.add_argument("role", choices=ROLES)
    streams = sub.add_parser("streams", help="JetStream topology")
    streams.add_argument("action", choices=["apply"])
    streams.add_argument(
        "--replicas",
        type=int,
        choices=[1, 3, 5],
        help="replicas of every stream and bucket (default: streams.yaml's; 3 on a cluster)",
    )
    sub.add_parser("migrate", help="apply the PostgreSQL migrations (what `up` does at start)")
    creds = sub.add_parser(
        "nats-credentials",
        help="make NATS keys (once) and every role's credentials in DIR, for a cluster",
    )
    creds.add_argument("dir", help="folder to write keys/, creds/ and auth.conf into")
    token = sub.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", default="", help="who or what the token is for")
    parked = sub.add_parser("parked", help="messages the handlers gave up on (PARKED)")
    parked_sub = parked.add_subparsers(dest="parked_command", required=True)
    listing = parked_sub.add_parser("list", help="parked messages, oldest first, with why")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = parked_sub.add_parser("replay", help="publish parked messages again, after a fix")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("seq", nargs="*", type=int, default=[], help="PARKED sequence numbers")
    which.add_argument("--all", action="store_true", help="every parked message")
    create.add_argument(
        "--expires", default="", help="lifetime such as 12h, 30d, 90m (default: never)"
    )
    token_sub.add_parser("list", help="every token: id, name, role, created, last used, expiry")
    revoke = token_sub.add_parser("revoke", help="revoke a token now, everywhere")
    revoke.add_argument("name_or_id", help="the token's id (from `token list`) or its name")
    audit = sub.add_parser("audit", help="who changed what, when and from where")
    audit.add_argument(
        "--since", default="24h", help="a lifetime back (90m, 7d) or an ISO time (default 24h)"
    )
    audit.add_argument("--who", default="", help="only this token name (or cli-admin)")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    usercli.add_user_commands(sub)
    return p


def _url(settings: Settings, kind: str) -> str:
    """The NATS or PostgreSQL URL: from settings, else from a running `jetscan up`."""
    given = settings.nats_url if kind == "nats" else settings.database_url
    if given:
        return given
    url_file = settings.home / f"{kind}.url"
    if url_file.exists():
        return url_file.read_text().strip()
    what, variable = (
        ("NATS", "JETSCAN_NATS_URL") if kind == "nats" else ("PostgreSQL", "JETSCAN_DATABASE_URL")
    )
    raise CliError(
        f"no {what} to talk to: set {variable}, or start `jetscan up`"
        f" (JETSCAN_HOME={settings.home})"
    )


def database_url(settings: Settings) -> str:
    return _url(settings, "database")


def nats_url(settings: Settings) -> str:
    return _url(settings, "nats")


def _role_name(args: argparse.Namespace) -> str:
    return str(args.role) if args.command == "run" else "jetscan"


def admin_creds(settings: Settings) -> str | None:
    """The admin's NATS user: JETSCAN_NATS_CREDS, else the one of a running `jetscan up`."""
    given = settings.nats_creds_for("admin")
    if given:
        return given
    made = settings.nats_auth_dir / "creds" / "admin.creds"
    return str(made) if made.exists() else None


def _embedded_creds(settings: Settings) -> dict[str, str]:
    """A role run beside `jetscan up` uses its credentials, unless told others."""
    made = settings.nats_auth_dir / "creds"
    if settings.nats_creds or settings.nats_url or not made.is_dir():
        return {}
    return {"nats_creds": str(made), "nats_job_signer": str(made / "job-signer.json")}


DB_ROLES = frozenset({"ingest", "queries", "scheduler", "reports"})


def _until_signal(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # SIGHUP too: closing the terminal `jetscan up` runs in must stop it as cleanly.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


async def _streams_apply(settings: Settings, replicas: int | None) -> None:
    import nats

    from handlers import topology

    topo = topology.load()
    if replicas is not None:
        topo = msgspec.structs.replace(topo, replicas=replicas)
    nc = await nats.connect(
        _url(settings, "nats"), name="jetscan-cli", user_credentials=admin_creds(settings)
    )
    try:
        changes = await topology.apply(nc.jetstream(), topo)
        if changes:
            from workers import audit

            await audit.record(nc.jetstream(), "streams-apply", f"{len(changes)} changes")
    finally:
        await nc.drain()
    out = [str(c) for c in changes] or ["nothing to change"]
    sys.stdout.write("\n".join(out) + "\n")


async def _migrate(settings: Settings) -> None:
    import asyncpg

    from handlers import database

    conn = await asyncpg.connect(_url(settings, "database"))
    try:
        applied = await database.migrate(conn)
    finally:
        await conn.close()
    out = [f"applied migration {m}" for m in applied] or ["nothing to migrate"]
    sys.stdout.write("\n".join(out) + "\n")


async def _token(settings: Settings, args: argparse.Namespace) -> None:
    import nats

    from handlers.topology import TopologyError, duration
    from workers import audit, tokens

    expires = None
    if getattr(args, "expires", ""):
        try:
            expires = timedelta(seconds=duration(args.expires))
        except TopologyError as exc:
            raise CliError(f"--expires: {exc}") from None
    nc = await nats.connect(
        _url(settings, "nats"), name="jetscan-cli", user_credentials=admin_creds(settings)
    )
    try:
        js = nc.jetstream()
        verb = args.token_command
        if verb == "create":
            role = Role(args.role)
            token = await tokens.create(js, role, args.name or role.value, expires)
            await audit.record(js, "token-create", f"{args.name or role.value} ({role.value})")
            sys.stdout.write(token + "\n")
        elif verb == "list":
            sys.stdout.write(_token_table(await tokens.rows(js)))
        else:
            try:
                gone = await tokens.revoke(js, args.name_or_id)
            except tokens.TokenError as exc:
                raise CliError(str(exc)) from None
            for row in gone:
                await audit.record(js, "token-revoke", f"{row.id} {row.name}")
            sys.stdout.write("".join(f"revoked {r.id} {r.name} ({r.role})\n" for r in gone))
    finally:
        await nc.drain()


async def _audit(settings: Settings, args: argparse.Namespace) -> None:
    import nats

    from handlers.topology import TopologyError, duration
    from workers import audit

    try:
        since = datetime.now(UTC) - timedelta(seconds=duration(args.since))
    except TopologyError:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            message = f"--since: expected 90m, 24h, 7d or an ISO time, got {args.since!r}"
            raise CliError(message) from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    nc = await nats.connect(
        _url(settings, "nats"), name="jetscan-cli", user_credentials=admin_creds(settings)
    )
    try:
        found = await audit.fetch(nc, since, args.who)
    except audit.AuditQueryError as exc:
        raise CliError(f"the audit log: {exc}") from None
    finally:
        await nc.drain()
    sys.stdout.write(audit.render(found, args.json))


def _token_table(rows: list[Any]) -> str:
    def when(value: datetime | None, none: str) -> str:
        return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else none

    lines = [("ID", "NAME", "ROLE", "CREATED", "LAST USED", "EXPIRES")]
    lines += [
        (
            r.id,
            r.name,
            r.role,
            when(r.created_at, ""),
            when(r.last_used, "never"),
            when(r.expires_at, "never"),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in lines
    )


def _nats_credentials(folder: str) -> None:
    from pathlib import Path

    from workers import natscreds

    root = Path(folder).resolve()
    natscreds.ensure(root)
    made = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    sys.stdout.write("".join(f"{root / p}\n" for p in made))


async def _parked(settings: Settings, args: argparse.Namespace) -> None:
    import nats

    from workers import audit, parked

    nc = await nats.connect(
        _url(settings, "nats"), name="jetscan-cli", user_credentials=admin_creds(settings)
    )
    try:
        js = nc.jetstream()
        if args.parked_command == "list":
            if args.limit < 1:
                raise CliError("--limit: must be at least 1")
            entries = await parked.list_parked(js, limit=args.limit)
            if args.json:
                sys.stdout.write("".join(msgspec.json.encode(e).decode() + "\n" for e in entries))
            else:
                sys.stdout.write(table(parked.HEADERS, parked.rows(entries)))
            total = await parked.count(js)
            if total > len(entries):
                sys.stderr.write(f"jetscan: {len(entries)} of {total} shown; --limit for more\n")
            return
        seqs = [p.seq for p in await parked.list_parked(js, limit=10**9)] if args.all else args.seq
        for seq in seqs:
            try:
                done = await parked.replay(js, seq)
            except parked.ReplayError as exc:
                raise CliError(str(exc)) from None
            await audit.record(js, "parked-replay", f"{seq} {done.subject}")
            sys.stdout.write(f"replayed {seq}: {done.subject} ({done.stream} {done.stream_seq})\n")
    finally:
        await nc.drain()


async def _run_role(settings: Settings, role: str, stop: asyncio.Event) -> None:
    from workers.roles import supervise

    if settings.health_addr is None:
        await supervise(settings, [role], stop)
        return
    up: set[str] = set()
    server = await health.listen(settings.health_addr, [role], up, "JETSCAN_HEALTH_ADDR")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(supervise(settings, [role], stop, up=up))
        tg.create_task(health.serve(server, stop))


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = dict(os.environ) if environ is None else environ
    try:
        settings = load(env)
    except SettingsError as exc:
        sys.stderr.write(f"jetscan: {exc}\n")
        return EXIT_USAGE
    logs.configure(settings.log_level, settings.log_format, role=_role_name(args))
    try:
        if args.command in usercli.USER_COMMANDS:
            return usercli.run(args, settings)
        if args.command == "up":
            from workers.stack import up

            with telemetry.tracing_to(settings.otlp_endpoint, "jetscan"):
                _until_signal(lambda stop: up(settings, stop))
        elif args.command == "run":
            run_settings = msgspec.structs.replace(
                settings,
                nats_url=_url(settings, "nats"),
                database_url=_url(settings, "database") if args.role in DB_ROLES else "",
                **_embedded_creds(settings),
            )
            with telemetry.tracing_to(settings.otlp_endpoint, f"jetscan-{args.role}"):
                _until_signal(lambda stop: _run_role(run_settings, args.role, stop))
        elif args.command == "streams":
            asyncio.run(_streams_apply(settings, args.replicas))
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "audit":
            asyncio.run(_audit(settings, args))
        elif args.command == "nats-credentials":
            _nats_credentials(args.dir)
        elif args.command == "token":
            asyncio.run(_token(settings, args))
        elif args.command == "parked":
            asyncio.run(_parked(settings, args))
    except (CliError, health.ListenError) as exc:
        sys.stderr.write(f"jetscan: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
