"""API tokens for the operator: create (with an expiry), list, revoke.

A token's secret is printed once; the `tokens` bucket keeps its SHA-256 with name, role,
creation and expiry. Revoking deletes the key: the edge's watch of the bucket turns that into
refusals everywhere, open consoles included, within the watch's latency (a session store
watches the same key).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError, NoKeysError

from contracts import wire
from contracts.auth import Role, TokenRecord, new_token, token_id, token_key

BUCKET = "tokens"
USED_BUCKET = "tokens-used"


class TokenError(Exception):
    """No token, or more than one, answers to what the operator named."""


class TokenRow(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    created_at: datetime
    last_used: datetime | None
    expires_at: datetime | None


async def store(
    js: JetStreamContext, token: str, role: Role, name: str, expires_at: datetime | None = None
) -> None:
    kv = await js.key_value(BUCKET)
    record = TokenRecord(name=name, role=role, created_at=_now(), expires_at=expires_at)
    await kv.put(token_key(token), wire.encode(record))


async def create(
    js: JetStreamContext, role: Role, name: str, expires_in: timedelta | None = None
) -> str:
    token = new_token()
    await store(js, token, role, name, None if expires_in is None else _now() + expires_in)
    return token


async def records(js: JetStreamContext) -> dict[str, TokenRecord]:
    """Every token record by hash."""
    kv = await js.key_value(BUCKET)
    try:
        keys = await kv.keys()
    except NoKeysError:
        return {}
    found: dict[str, TokenRecord] = {}
    for key in keys:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            continue
        if entry.value:
            found[key] = msgspec.json.decode(entry.value, type=TokenRecord)
    return found


async def rows(js: JetStreamContext) -> list[TokenRow]:
    """What `jetscan token list` shows, oldest first."""
    used: dict[str, datetime] = {}
    try:
        used_kv = await js.key_value(USED_BUCKET)
        for key in await used_kv.keys():
            entry = await used_kv.get(key)
            if entry.value:
                used[key] = datetime.fromisoformat(entry.value.decode())
    except (BucketNotFoundError, NoKeysError, KeyNotFoundError):
        pass
    out = [
        TokenRow(token_id(k), r.name, r.role.value, r.created_at, used.get(k), r.expires_at)
        for k, r in (await records(js)).items()
    ]
    return sorted(out, key=lambda row: row.created_at)


async def revoke(js: JetStreamContext, name_or_id: str) -> list[TokenRow]:
    """Delete the token whose id (or a prefix of 8+ of its hash) or name is `name_or_id`;
    a name shared by several tokens revokes them all. Raise TokenError if none matches."""
    found = await records(js)
    matched = [k for k in found if len(name_or_id) >= 8 and k.startswith(name_or_id.lower())]
    if not matched:
        matched = [k for k, r in found.items() if r.name == name_or_id]
    if not matched:
        raise TokenError(f"no token has id or name {name_or_id!r} (see `jetscan token list`)")
    kv = await js.key_value(BUCKET)
    for key in matched:
        await kv.delete(key)
    return [
        TokenRow(
            token_id(k),
            found[k].name,
            found[k].role.value,
            found[k].created_at,
            None,
            found[k].expires_at,
        )
        for k in matched
    ]


async def ensure_admin_token(js: JetStreamContext, path: Path) -> bool:
    """Create the admin token file on first start; return whether one was created.

    On later starts the file's token is re-registered if the bucket lost it (a wiped NATS
    store), so the file always works.
    """
    if path.exists():
        token = path.read_text().strip()
        kv = await js.key_value(BUCKET)
        try:
            await kv.get(token_key(token))
        except KeyDeletedError:
            pass  # revoked on purpose: the file's token stays dead
        except KeyNotFoundError:
            await store(js, token, Role.ADMIN, "admin")
        return False
    token = await create(js, Role.ADMIN, "admin")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return True


def _now() -> datetime:
    return datetime.now(UTC)
