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
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.events import RecvRequest
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from contracts import wire
from contracts.auth import Role, TokenRecord, token_key

log = logging.getLogger(__name__)

TOKENS_BUCKET = "tokens"
USED_BUCKET = "tokens-used"
STAMP_EVERY = 60.0
PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.v1alpha.", "/grpc.reflection.v1.")

# Long-lived server streams: cut off when their token is revoked or expires (a unary call
# is over before that could matter, and is spared two tasks per call).
STREAMS = frozenset({"WatchScan"})

# Method name (without service) → least role allowed to call it.
_OPERATOR = frozenset(
    {
        "StartScan",
        "CancelScan",
        "TriageFinding",
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


def _quiet(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("token use not recorded: %r", task.exception())


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
    """The `tokens` bucket, mirrored in memory by a KV watch.

    A token's deletion (revocation) reaches every holder of it within the watch's latency:
    `invalidated(token)` returns when the token is deleted, replaced or expires, which is how
    open consoles end (and how a session store would). When a token is used, its time goes
    to the `tokens-used` bucket, at most once a minute per token, for `jetscan token list`.
    """

    def __init__(self) -> None:
        self._records: dict[str, TokenRecord] = {}
        self._listeners: dict[str, set[asyncio.Event]] = {}
        self._stamped: dict[str, float] = {}
        self._used: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self, js: JetStreamContext) -> None:
        kv = await js.key_value(TOKENS_BUCKET)
        with contextlib.suppress(nats.js.errors.BucketNotFoundError, nats.errors.Error):
            self._used = await js.key_value(USED_BUCKET)
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
                self._wake(entry.key)
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self._records.pop(entry.key, None)
                    continue
                try:
                    self._records[entry.key] = msgspec.json.decode(entry.value, type=TokenRecord)
                except wire.UNDECODABLE:
                    self._records.pop(entry.key, None)
                    log.warning("ignoring malformed token record %s", entry.key[:8])
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    def _wake(self, key: str) -> None:
        for event in self._listeners.pop(key, set()):
            event.set()

    def lookup(self, token: str) -> TokenRecord | None:
        return self.lookup_key(token_key(token))

    def lookup_key(self, key: str) -> TokenRecord | None:
        """The live record of the token whose hash is `key` (a portal session knows only that)."""
        record = self._records.get(key)
        if record is None or record.expired(datetime.now(UTC)):
            return None
        return record

    async def invalidated(self, token: str) -> None:
        """Return once `token` is revoked, changed or expired (at once if it is now)."""
        await self.invalidated_key(token_key(token))

    async def invalidated_key(self, key: str) -> None:
        """`invalidated` of the token whose hash is `key`."""
        record = self.lookup_key(key)
        if record is None:
            return
        event = asyncio.Event()
        self._listeners.setdefault(key, set()).add(event)
        try:
            timeout = None
            if record.expires_at is not None:
                timeout = max((record.expires_at - datetime.now(UTC)).total_seconds(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            self._listeners.get(key, set()).discard(event)

    def used(self, key: str) -> None:
        """Note that the token with hash `key` was just used (see the class docstring)."""
        now = time.monotonic()
        if self._used is None or now - self._stamped.get(key, -STAMP_EVERY) < STAMP_EVERY:
            return
        self._stamped[key] = now
        stamp = datetime.now(UTC).isoformat().encode()
        task = asyncio.create_task(self._used.put(key, stamp))
        task.add_done_callback(_quiet)

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
        key = token_key(token)
        self.used(key)
        return Principal(record.name, record.role, key)

    async def on_request(self, event: RecvRequest) -> None:
        """grpclib RecvRequest hook: runs in the same task as the method handler."""
        if event.method_name.startswith(PUBLIC_PREFIXES):
            return
        value = event.metadata.get("authorization")
        principal = self.authenticate(value if isinstance(value, str) else None, event.method_name)
        current.set(principal)
        if event.method_name.rsplit("/", 1)[-1] in STREAMS:
            token = bearer(value if isinstance(value, str) else None) or ""
            event.method_func = self._ended_by_revocation(event.method_func, token)

    def _ended_by_revocation(self, handler: Any, token: str) -> Any:
        """`handler`, cut off with UNAUTHENTICATED if its token is revoked or expires while it
        runs: a long WatchScan stream ends like an open WebSocket console."""

        async def guarded(stream: Any) -> None:
            work = asyncio.ensure_future(handler(stream))
            revoked = asyncio.ensure_future(self.invalidated(token))
            try:
                await asyncio.wait({work, revoked}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                work.cancel()
                raise
            finally:
                revoked.cancel()
            if work.done():
                work.result()
                return
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            raise GRPCError(Status.UNAUTHENTICATED, "token revoked or expired")

        return guarded
