"""The edge's only way to the rest of jetscan: commands on JetStream, queries over NATS.

The edge holds no database credentials; a query's `Nats-Service-Error` becomes a gRPC
status here and nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec
import nats
from grpclib import GRPCError
from grpclib.const import Status
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from contracts import subjects, tracing, wire

log = logging.getLogger(__name__)
T = TypeVar("T")

_STATUS = {
    "400": Status.INVALID_ARGUMENT,
    "404": Status.NOT_FOUND,
    "409": Status.FAILED_PRECONDITION,
    "503": Status.UNAVAILABLE,
}


class Bus:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()

    @classmethod
    async def connect(cls, url: str, *, creds: str = "") -> Bus:
        """Connect as the edge's NATS user (`creds`, a `.creds` file; none: anonymous)."""
        nc = await nats.connect(
            url,
            name="jetscan-edge",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            user_credentials=creds or None,
            inbox_prefix=subjects.role_inbox("edge"),
        )
        return cls(nc)

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()

    async def command(self, subject: str, payload: bytes, msg_id: str) -> bool:
        """Publish a command and wait for JetStream's ack; return whether it was a duplicate."""
        try:
            ack = await self.js.publish(
                subject, payload, headers=tracing.inject({"Nats-Msg-Id": msg_id}), timeout=5
            )
        except (NatsTimeoutError, NoRespondersError):
            raise GRPCError(Status.UNAVAILABLE, "JetStream did not accept the command") from None
        return bool(ack.duplicate)

    async def query(
        self, subject: str, request: Any, reply_type: type[T], timeout: float = 5.0
    ) -> T:
        try:
            msg = await self.nc.request(subject, wire.encode(request), timeout=timeout)
        except NoRespondersError:
            raise GRPCError(Status.UNAVAILABLE, "the queries service is not running") from None
        except NatsTimeoutError:
            raise GRPCError(Status.UNAVAILABLE, "the queries service did not answer") from None
        headers = msg.headers or {}
        code = headers.get("Nats-Service-Error-Code")
        if code:
            description = headers.get("Nats-Service-Error", "")
            raise GRPCError(_STATUS.get(code, Status.INTERNAL), description)
        try:
            return msgspec.json.decode(msg.data, type=reply_type)
        except wire.UNDECODABLE as exc:
            log.error("undecodable reply on %s: %s", subject, exc)
            raise GRPCError(Status.INTERNAL, "malformed reply from the queries service") from exc
