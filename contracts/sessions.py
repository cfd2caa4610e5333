"""Web portal sessions: what the `sessions` key-value bucket holds under a cookie's hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

import msgspec

SESSION_HOURS = 12  # streams.yaml's `ttl` of the bucket: a sign-in lasts at most this long


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in browser. The API token is kept only as its hash (`token_key`): the
    token's name and role are read from the `tokens` bucket on every request, so revoking
    the token ends the session too. `csrf` is the form token of this session."""

    token_key: str
    csrf: str
    created_at: datetime
    origin: str = ""  # the address the sign-in came from, for the audit log
    # The last request of this browser (to a minute or so, see `SessionStore.lookup`); a
    # session idle for `JETSCAN_PORTAL_IDLE_MINUTES` is over. None: a record from before.
    seen_at: datetime | None = None


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def session_key(cookie: str) -> str:
    """The bucket key of a session cookie: its SHA-256 (the cookie is never stored)."""
    return hashlib.sha256(cookie.encode()).hexdigest()
