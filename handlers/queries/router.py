"""Request handlers of the queries service: decode, read, encode, or answer an error."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import msgspec
from nats.micro.request import Request

from contracts import scans, wire
from handlers import store
from handlers.queries import paging

log = logging.getLogger(__name__)
T = TypeVar("T")


class QueryError(Exception):
    """A request the service answers with an error code instead of a result."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _decode(data: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:
        raise QueryError(400, f"malformed request: {exc}") from exc


async def _answer(req: Request, work: Callable[[], Awaitable[object]]) -> None:
    try:
        result = await work()
    except QueryError as exc:
        await req.respond_error(str(exc.code), exc.description)
        return
    except (asyncpg.PostgresError, OSError) as exc:
        log.exception("query failed")
        await req.respond_error("503", f"database unavailable: {type(exc).__name__}")
        return
    await req.respond(wire.encode(result))


class Queries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get_scan(self, req: Request) -> None:
        async def work() -> scans.ScanView:
            q = _decode(req.data, scans.GetScan)
            view = await store.get_scan(self.pool, q.id)
            if view is None:
                raise QueryError(404, f"scan {q.id!r} not found")
            return view

        await _answer(req, work)

    async def list_scans(self, req: Request) -> None:
        async def work() -> scans.ScanPage:
            q = _decode(req.data, scans.ListScans)
            status = q.status.value if q.status else ""
            fhash = paging.filter_hash("scans", q.domain, q.tool, status)
            try:
                size = paging.page_size(q.page_size)
                after = paging.decode_token(q.page_token, fhash) if q.page_token else None
            except ValueError as exc:
                raise QueryError(400, str(exc)) from exc
            rows = await store.list_scans(
                self.pool,
                domain=q.domain,
                tool=q.tool,
                status=status,
                limit=size + 1,
                after=after,
            )
            token = ""
            if len(rows) > size:
                rows = rows[:size]
                token = paging.encode_token(fhash, rows[-1].created_at, rows[-1].id)
            return scans.ScanPage(scans=rows, next_page_token=token)

        await _answer(req, work)
