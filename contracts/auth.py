"""API tokens: roles and the hashed records kept in the `tokens` key-value bucket."""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import datetime

import msgspec

TOKEN_PREFIX = "jst_"  # noqa: S105 - a public prefix, not a secret


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return _LEVEL[self] >= _LEVEL[needed]


_LEVEL = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What is stored under the token's hash; the token itself is never stored."""

    name: str
    role: Role
    created_at: datetime
    # None: never expires. An expired token is refused everywhere, like a revoked one.
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def token_id(key: str) -> str:
    """The short id `jetscan token list` shows and `revoke` accepts: the hash's first 12."""
    return key[:12]


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_key(token: str) -> str:
    """The bucket key of a token: its SHA-256.

    Tokens carry 256 random bits, so a fast hash is enough; a password hash would only
    slow down every request.
    """
    return hashlib.sha256(token.encode()).hexdigest()
