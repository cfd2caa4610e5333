"""Bearer-token authentication and role checks for every RPC but health and reflection.

Token records live hashed in the `tokens` key-value bucket; the edge keeps a copy fed by
a watch, so checking a token costs a dict lookup and a revoked token stops working as
soon as its deletion reaches the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from dataclasses import dataclass

import msgspec
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.events import RecvRequest
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from contracts import wire
from contracts.auth import Role, TokenRecord, token_key

log = logging.getLogger(__name__)

TOKENS_BUCKET = "tokens"
PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.v1alpha.", "/grpc.reflection.v1.")

# Method name (without service) → least role allowed to call it.
_OPERATOR = frozenset(
    {
        "StartScan",
        "CancelScan",
        "GenerateReport",
        "CreateSchedule",
        "UpdateSchedule",
        "DeleteSchedule",
        "RunScheduleNow",
        "PauseSchedule",
        "ResumeSchedule",
    }
)


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    key: str  # the token's hash: a stable identity that reveals nothing


current: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def required_role(method: str) -> Role:
    return Role.OPERATOR if method.rsplit("/", 1)[-1] in _OPERATOR else Role.VIEWER


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, credential = value.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


class TokenCache:
    """The `tokens` bucket, mirrored in memory by a KV watch."""

    def __init__(self) -> None:
        self._records: dict[str, TokenRecord] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self, js: JetStreamContext) -> None:
        kv = await js.key_value(TOKENS_BUCKET)
        self._task = asyncio.create_task(self._follow(kv), name="token-watch")
        await asyncio.wait_for(self.ready.wait(), 10)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self, kv: KeyValue) -> None:
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # the initial values have all been delivered
                    self.ready.set()
                    continue
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self._records.pop(entry.key, None)
                    continue
                try:
                    self._records[entry.key] = msgspec.json.decode(entry.value, type=TokenRecord)
                except wire.UNDECODABLE:
                    log.warning("ignoring malformed token record %s", entry.key[:8])
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    def lookup(self, token: str) -> TokenRecord | None:
        return self._records.get(token_key(token))

    def authenticate(self, authorization: str | None, method: str) -> Principal:
        token = bearer(authorization)
        if token is None:
            raise GRPCError(Status.UNAUTHENTICATED, "missing 'authorization: Bearer <token>'")
        record = self.lookup(token)
        if record is None:
            raise GRPCError(Status.UNAUTHENTICATED, "unknown or revoked token")
        needed = required_role(method)
        if not record.role.allows(needed):
            raise GRPCError(
                Status.PERMISSION_DENIED,
                f"{method} needs role {needed.value};"
                f" token {record.name!r} has {record.role.value}",
            )
        return Principal(record.name, record.role, token_key(token))

    async def on_request(self, event: RecvRequest) -> None:
        """grpclib RecvRequest hook: runs in the same task as the method handler."""
        if event.method_name.startswith(PUBLIC_PREFIXES):
            return
        value = event.metadata.get("authorization")
        principal = self.authenticate(value if isinstance(value, str) else None, event.method_name)
        current.set(principal)
