"""`evt.audit.<source>.<action>`: one record per mutation, whoever made it and however."""

from __future__ import annotations

from datetime import datetime

import msgspec


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Who (`who`, the token's name, and `token`, its id), what (`action`, on `target`),
    when (`at`), from where (`origin`: the peer address of an RPC, `user@host` of a CLI
    command), through which door (`source`: grpc, cli, ui)."""

    id: str
    at: datetime
    source: str
    action: str
    who: str
    role: str
    origin: str
    target: str = ""
    token: str = ""
