"""The roles one jetscan process can run, and a supervisor that runs several together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from contracts.settings import ROLES, Settings
from workers import logs

log = logging.getLogger(__name__)

Serve = Callable[[Settings, asyncio.Event], Awaitable[None]]


def serve_function(role: str) -> Serve:
    # Imported on demand: `jetscan run edge` never loads asyncpg or the handlers.
    if role == "edge":
        from edge.server import serve as edge_serve

        return edge_serve
    if role == "queries":
        from handlers.queries import serve as queries_serve

        return queries_serve
    if role == "ingest":
        from handlers.ingest import serve as ingest_serve

        return ingest_serve
    if role == "reports":
        from handlers.reports import serve as reports_serve

        return reports_serve
    if role == "launcher":
        from handlers.launcher import serve as launcher_serve

        return launcher_serve
    if role == "scheduler":
        from handlers.scheduler import serve as scheduler_serve

        return scheduler_serve
    raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")


async def supervise(
    settings: Settings,
    roles: list[str],
    stop: asyncio.Event,
    *,
    restart_delay: float = 1.0,
    up: set[str] | None = None,
) -> None:
    """Run `roles` until `stop` is set; a role that crashes is logged and restarted.

    `up`, when given, holds the roles currently serving (not waiting out a crash's backoff),
    for a readiness probe (`workers.health`).
    """
    serving = up if up is not None else set()

    async def keep_running(role: str) -> None:
        logs.role.set(role)  # this task's context: every task the role starts inherits it
        serve = serve_function(role)
        delay = restart_delay
        while not stop.is_set():
            serving.add(role)
            try:
                await serve(settings, stop)
                delay = restart_delay
            except Exception:
                serving.discard(role)
                log.exception("role %s crashed; restarting in %.1fs", role, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)
        serving.discard(role)

    async with asyncio.TaskGroup() as tg:
        for role in roles:
            tg.create_task(keep_running(role), name=f"role-{role}")
