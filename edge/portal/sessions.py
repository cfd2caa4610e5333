"""Portal sign-ins: a random cookie, its hash a key in the `sessions` bucket.

The cookie names a `SessionRecord`, which names the API token it was opened with by hash.
Every request reads both: a session deleted from the bucket (sign-out, or an operator's
`nats kv del`) or whose token is revoked or expired is over at the next request, and an
open console ends through the token watch (`TokenCache.invalidated_key`).

A session unused for `idle` (`JETSCAN_PORTAL_IDLE_MINUTES`) is over too: each request notes
the time in its record (at most every `idle / 10`, a minute at most, to spare the bucket
writes), and a request after a longer gap finds the record deleted instead. An open
console's own checks do not count as use: a page left open does not keep its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from starlette.requests import HTTPConnection
from starlette.responses import Response

from contracts import wire
from contracts.auth import Role, TokenRecord, token_key
from contracts.sessions import SESSION_HOURS, SessionRecord, new_secret, session_key
from edge.auth import Principal, TokenCache

log = logging.getLogger(__name__)

BUCKET = "sessions"
COOKIE = "jetscan_session"
SECURE_COOKIE = "__Host-jetscan_session"  # a Secure cookie: path /, no domain, https only
SESSION_POLL = 0.5  # seconds between an open console's checks of its session
IDLE = "idle"  # what `lookup` answers for a session that was unused too long


@dataclass(frozen=True)
class Session:
    """A signed-in browser, as a page sees it."""

    principal: Principal
    csrf: str
    key: str  # the session's bucket key

    @property
    def can_operate(self) -> bool:
        return self.principal.role.allows(Role.OPERATOR)


class SessionUnavailable(Exception):
    """The sessions bucket did not answer."""


def _now() -> datetime:
    return datetime.now(UTC)


class SessionStore:
    def __init__(
        self,
        tokens: TokenCache,
        *,
        secure: bool,
        idle: timedelta = timedelta(minutes=30),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.tokens = tokens
        self.secure = secure
        self.idle = idle
        self._clock = clock
        # How stale a record's `seen_at` may get before a request writes it again.
        self._refresh = min(idle / 10, timedelta(minutes=1))
        self.cookie = SECURE_COOKIE if secure else COOKIE
        self._kv: KeyValue | None = None

    async def start(self, js: JetStreamContext) -> None:
        try:
            self._kv = await js.key_value(BUCKET)
        except nats.js.errors.BucketNotFoundError:
            # An install from before the portal: the API works; sign-in says what is missing.
            log.warning(
                "no %r bucket: the portal cannot sign anyone in (jetscan streams apply)", BUCKET
            )

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise SessionUnavailable("the sessions bucket is not open")
        return self._kv

    async def open(self, token: str, origin: str) -> tuple[str, TokenRecord] | None:
        """Sign in with an API token: the new cookie value and the token's record, or None
        for an unknown, revoked or expired token."""
        record = self.tokens.lookup(token)
        if record is None:
            return None
        cookie = new_secret()
        now = self._clock()
        stored = SessionRecord(
            token_key=token_key(token),
            csrf=new_secret(),
            created_at=now,
            origin=origin,
            seen_at=now,
        )
        try:
            await self.kv.put(session_key(cookie), wire.encode(stored))
        except nats.errors.Error as exc:
            raise SessionUnavailable("the sessions bucket refused the sign-in") from exc
        return cookie, record

    async def find(self, conn: HTTPConnection, *, touch: bool = True) -> Session | None:
        """The live session of a request or WebSocket, or None."""
        found = await self.lookup(conn, touch=touch)
        return found if isinstance(found, Session) else None

    async def lookup(self, conn: HTTPConnection, *, touch: bool = True) -> Session | str | None:
        """The live session of a request or WebSocket; `IDLE` for one that went unused for
        `idle` (now deleted); else None. `touch`: this request is the browser's use."""
        cookie = conn.cookies.get(self.cookie, "")
        if not cookie or len(cookie) > 128:
            return None
        key = session_key(cookie)
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        except nats.errors.Error as exc:
            raise SessionUnavailable("the sessions bucket did not answer") from exc
        if not entry.value:
            return None
        try:
            stored = msgspec.json.decode(entry.value, type=SessionRecord)
        except wire.UNDECODABLE:
            log.warning("ignoring malformed session %s", key[:8])
            return None
        now = self._clock()
        seen = stored.seen_at or stored.created_at
        if now - seen >= self.idle:
            with contextlib.suppress(nats.errors.Error):
                await self.kv.delete(key)
            return IDLE
        record = self.tokens.lookup_key(stored.token_key)
        if record is None:
            return None
        if touch and now - seen >= self._refresh:
            # Only over the revision read: a sign-out in between stays a sign-out. Losing
            # the race to another request of the browser is as good as winning it.
            fresh = msgspec.structs.replace(stored, seen_at=now)
            with contextlib.suppress(nats.errors.Error):
                await self.kv.update(key, wire.encode(fresh), last=entry.revision)
        self.tokens.used(stored.token_key)
        return Session(Principal(record.name, record.role, stored.token_key), stored.csrf, key)

    async def ended(self, conn: HTTPConnection) -> None:
        """Return once the session of `conn` is over (signed out, deleted, expired, or its
        token gone): how an open console learns of a sign-out, checked every
        `SESSION_POLL` seconds (a token's revocation reaches it sooner, through the watch)."""
        while True:
            await asyncio.sleep(SESSION_POLL)
            try:
                if await self.find(conn, touch=False) is None:
                    return
            except SessionUnavailable:
                continue  # the bucket is briefly away: not a sign-out

    async def close(self, session: Session) -> None:
        try:
            await self.kv.delete(session.key)
        except nats.errors.Error as exc:
            raise SessionUnavailable("the sessions bucket did not answer") from exc

    def set_cookie(self, response: Response, cookie: str) -> None:
        response.set_cookie(
            self.cookie,
            cookie,
            max_age=SESSION_HOURS * 3600,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            self.cookie, path="/", secure=self.secure, httponly=True, samesite="lax"
        )
