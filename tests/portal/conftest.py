"""Debian's Chromium driven by Playwright against the session's real stack.

Screenshots go to `$JETSCAN_SCREENSHOTS`, else `build/screenshots/` (git-ignored): looked
at, never committed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from contracts.auth import Role
from tests.conftest import ROOT, Stack
from workers import tokens

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def base_url(stack: Stack) -> str:
    return f"http://{stack.settings.http_addr}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    where = Path(os.environ.get("JETSCAN_SCREENSHOTS") or ROOT / "build" / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def new_token(stack: Stack, role: Role, name: str) -> str:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        return await tokens.create(nc.jetstream(), role, name, None)
    finally:
        await nc.drain()


@pytest.fixture
async def context(browser: Browser, stack: Stack) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(
        base_url=base_url(stack), viewport={"width": 1360, "height": 900}
    )
    try:
        yield ctx
    finally:
        await ctx.close()


async def sign_in(page: Page, token: str, path: str = "/") -> None:
    """Open `path`, be sent to the sign-in form, sign in and land back on `path`."""
    await page.goto(path)
    await page.wait_for_url("**/login?next=*")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


@pytest.fixture
async def operator_page(context: BrowserContext, stack: Stack) -> AsyncIterator[Page]:
    page = await context.new_page()
    await sign_in(page, stack.admin_token)
    return page


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url(stack), timeout=15) as client:
        yield client


async def session_of(http: httpx.AsyncClient, token: str) -> tuple[str, str]:
    """Sign `http` in with `token` (as a same-origin browser form would); return the cookie
    and the session's form token, read from a page's sign-out form."""
    origin = str(http.base_url).rstrip("/")
    reply = await http.post(
        "/login", data={"token": token, "next": "/"}, headers={"Origin": origin}
    )
    assert reply.status_code == 303, reply.text
    cookie = reply.cookies["jetscan_session"]
    http.cookies.clear()  # each request names its session itself (`with_session`)
    page = await http.get("/", headers=with_session(cookie))
    assert page.status_code == 200
    marker = 'name="csrf" value="'
    start = page.text.index(marker) + len(marker)
    return cookie, page.text[start : page.text.index('"', start)]


def with_session(cookie: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"jetscan_session={cookie}", **headers}
