"""Creating API tokens: a random secret for the user, its hash and role in the bucket."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from contracts import wire
from contracts.auth import Role, TokenRecord, new_token, token_key

BUCKET = "tokens"


async def store(js: JetStreamContext, token: str, role: Role, name: str) -> None:
    kv = await js.key_value(BUCKET)
    record = TokenRecord(name=name, role=role, created_at=datetime.now(UTC))
    await kv.put(token_key(token), wire.encode(record))


async def create(js: JetStreamContext, role: Role, name: str) -> str:
    token = new_token()
    await store(js, token, role, name)
    return token


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
        except KeyNotFoundError:
            await store(js, token, Role.ADMIN, "admin")
        return False
    token = await create(js, Role.ADMIN, "admin")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return True
