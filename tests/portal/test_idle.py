"""A portal session unused for `JETSCAN_PORTAL_IDLE_MINUTES` is over: the next page sends the
browser to sign in, saying why. An edge of its own with a seconds-long setting stands for the
minutes-long default."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import nats
from starlette.requests import Request

from contracts.settings import Address
from edge.auth import TokenCache
from edge.portal.sessions import COOKIE, IDLE, Session, SessionStore
from tests.conftest import Stack, free_port
from tests.portal.conftest import session_of, with_session
from workers.stack import wait_listening

IDLE_MINUTES = 0.1  # 6 s


@contextlib.asynccontextmanager
async def edge_with(stack: Stack, **changes: object) -> AsyncIterator[httpx.AsyncClient]:
    """A second edge beside the stack's, with `changes` to its settings, and a client of its
    portal."""
    from workers.roles import supervise

    settings = msgspec.structs.replace(
        stack.settings,
        grpc_addr=Address("127.0.0.1", free_port()),
        http_addr=Address("127.0.0.1", free_port()),
        **changes,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervise(settings, ["edge"], stop))
    try:
        await wait_listening(settings.http_addr, timeout=20)
        async with httpx.AsyncClient(base_url=f"http://{settings.http_addr}", timeout=15) as http:
            yield http
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_an_idle_session_ends_and_sign_in_says_why(stack: Stack) -> None:
    async with edge_with(stack, portal_idle_minutes=IDLE_MINUTES) as http:
        cookie, _ = await session_of(http, stack.admin_token)
        loop = asyncio.get_running_loop()
        # In use for longer than the idle time: each page keeps the session.
        busy_until = loop.time() + IDLE_MINUTES * 60 * 1.5
        while loop.time() < busy_until:
            page = await http.get("/scans", headers=with_session(cookie))
            assert page.status_code == 200, "the session ended while in use"
            await asyncio.sleep(0.5)
        # Then left alone past it.
        await asyncio.sleep(IDLE_MINUTES * 60 + 1.5)
        gone = await http.get("/scans?tool=nmap", headers=with_session(cookie))
        assert gone.status_code == 303
        where = urlsplit(gone.headers["location"])
        assert where.path == "/login"
        assert parse_qs(where.query) == {"next": ["/scans?tool=nmap"], "ended": ["idle"]}
        assert 'jetscan_session=""' in gone.headers["set-cookie"]
        form = await http.get(gone.headers["location"])
        assert form.status_code == 200
        assert "signed out after 0.1 minutes without activity" in form.text
        # The session itself is gone, not only refused: the cookie stays dead.
        again = await http.get("/", headers=with_session(cookie))
        assert again.status_code == 303 and again.headers["location"] == "/login?next=%2F"
        # A form posted with it says the same as the page would.
        own = str(http.base_url).rstrip("/")
        cookie, csrf = await session_of(http, stack.admin_token)
        await asyncio.sleep(IDLE_MINUTES * 60 + 1.5)
        refused = await http.post(
            "/logout", data={"csrf": csrf}, headers=with_session(cookie, Origin=own)
        )
        assert refused.status_code == 403
        assert "signed out after 0.1 minutes without activity" in refused.text
        # Signing in again works at once.
        cookie, _ = await session_of(http, stack.admin_token)
        assert (await http.get("/scans", headers=with_session(cookie))).status_code == 200


async def test_use_keeps_a_session_and_an_open_console_s_checks_do_not(stack: Stack) -> None:
    """On the sessions bucket itself, with the store's clock moved by hand."""
    nc = await nats.connect(stack.settings.nats_url)
    tokens = TokenCache()
    await tokens.start(nc.jetstream())
    now = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    store = SessionStore(tokens, secure=False, idle=timedelta(minutes=30), clock=lambda: now)
    try:
        await store.start(nc.jetstream())
        opened = await store.open(stack.admin_token, "127.0.0.1:1")
        assert opened is not None
        browser = Request(
            {"type": "http", "headers": [(b"cookie", f"{COOKIE}={opened[0]}".encode())]}
        )
        now += timedelta(minutes=29)
        assert isinstance(await store.lookup(browser), Session)  # a page: used at 9:29
        now += timedelta(minutes=29)
        # A console's checks (touch=False) at 9:58 find it, and do not count as use.
        assert isinstance(await store.lookup(browser, touch=False), Session)
        now += timedelta(minutes=1, seconds=1)
        assert await store.lookup(browser, touch=False) == IDLE
        # Deleted: whatever the clock says next, it is over.
        now -= timedelta(hours=1)
        assert await store.lookup(browser) is None
    finally:
        await tokens.stop()
        await nc.drain()
