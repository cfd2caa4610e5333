"""Portal sign-ins: a random cookie, its hash a key in the `sessions` bucket.

The cookie names a `SessionRecord`, which names the API token it was opened with by hash.
Every request reads both: a session deleted from the bucket (sign-out, or an operator's
`nats kv del`) or whose token is revoked or expired is over at the next request, and an
open console ends through the token watch (`TokenCache.invalidated_key`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

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


class SessionStore:
    def __init__(self, tokens: TokenCache, *, secure: bool) -> None:
        self.tokens = tokens
        self.secure = secure
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
        stored = SessionRecord(
            token_key=token_key(token),
            csrf=new_secret(),
            created_at=datetime.now(UTC),
            origin=origin,
        )
        try:
            await self.kv.put(session_key(cookie), wire.encode(stored))
        except nats.errors.Error as exc:
            raise SessionUnavailable("the sessions bucket refused the sign-in") from exc
        return cookie, record

    async def find(self, conn: HTTPConnection) -> Session | None:
        """The live session of a request or WebSocket, or None."""
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
        record = self.tokens.lookup_key(stored.token_key)
        if record is None:
            return None
        self.tokens.used(stored.token_key)
        return Session(Principal(record.name, record.role, stored.token_key), stored.csrf, key)

    async def ended(self, conn: HTTPConnection) -> None:
        """Return once the session of `conn` is over (signed out, deleted, expired, or its
        token gone): how an open console learns of a sign-out, checked every
        `SESSION_POLL` seconds (a token's revocation reaches it sooner, through the watch)."""
        while True:
            await asyncio.sleep(SESSION_POLL)
            try:
                if await self.find(conn) is None:
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
