"""Roles whose pipeline work arrives in later issues: they announce themselves on NATS.

Each is a NATS micro service from its first start, so `nats micro ls` lists every role
and the edge's health reflects whether it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from contracts.settings import Settings
from handlers import bus

DESCRIPTIONS = {
    "reports": "Renders scan findings to PDF and JSON reports.",
}


def serve_for(role: str) -> Callable[[Settings, asyncio.Event], Awaitable[None]]:
    description = DESCRIPTIONS[role]

    async def serve(settings: Settings, stop: asyncio.Event) -> None:
        nc = await bus.connect(settings, role)
        try:
            service = await bus.register(nc, role, description)
            await stop.wait()
            await service.stop()
        finally:
            await nc.drain()

    return serve
