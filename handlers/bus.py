"""The one place handlers connect to NATS: the FastStream broker and plain clients."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from faststream.nats import NatsBroker
from faststream.nats.security import NatsCredentials
from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service, ServiceConfig

from contracts import VERSION, subjects
from contracts.settings import Settings

log = logging.getLogger(__name__)

# Keep retrying forever: a handler outliving a NATS restart is the normal case.
_RECONNECT: dict[str, Any] = {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.5}


def service_name(role: str) -> str:
    return f"jetscan-{role}"


def make_broker(settings: Settings, role: str) -> NatsBroker:
    creds = settings.nats_creds_for(role)
    return NatsBroker(
        settings.nats_url,
        name=service_name(role),
        graceful_timeout=10.0,
        logger=logging.getLogger(f"handlers.{role}"),
        # The role's own NATS user, and the inbox prefix that user may read replies on.
        security=NatsCredentials(creds) if creds else None,
        inbox_prefix=subjects.role_inbox(role),
        **_RECONNECT,
    )


async def connect(settings: Settings, role: str) -> Client:
    return await nats.connect(
        settings.nats_url,
        name=service_name(role),
        user_credentials=settings.nats_creds_for(role) or None,
        inbox_prefix=subjects.role_inbox(role),
        **_RECONNECT,
    )


Handler = Callable[[Request], Awaitable[None]]


async def register(
    nc: Client, role: str, description: str, endpoints: dict[str, tuple[str, Handler]] | None = None
) -> Service:
    """Announce a role as a NATS micro service, so `nats micro ls` and health checks see it.

    `endpoints` maps endpoint name to (subject, handler); replicas of a role share a queue
    group, so each request is answered once.
    """
    service = await add_service(
        nc,
        ServiceConfig(
            name=service_name(role),
            version=VERSION,
            description=description,
            queue_group=service_name(role),
        ),
    )
    for name, (subject, handler) in (endpoints or {}).items():
        await service.add_endpoint(EndpointConfig(name=name, subject=subject, handler=handler))
    return service
