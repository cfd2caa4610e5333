"""Sign-in, sign-out, the way back to the page asked for, and the session's end with its
token."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import msgspec
import nats
from playwright.async_api import BrowserContext, expect
from starlette.responses import Response

from contracts.auth import Role
from contracts.settings import Settings
from edge.auth import TokenCache
from edge.portal.sessions import SessionStore
from edge.portal.signin import safe_next
from edge.server import secure_cookies
from tests.conftest import Stack
from tests.portal.conftest import new_token, session_of, sign_in, with_session
from workers import tokens


def test_next_stays_on_this_site() -> None:
    assert safe_next("/scans?tool=nmap&status=running") == "/scans?tool=nmap&status=running"
    for hostile in (
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "/ok\r\nSet-Cookie: x=1",
        "",
        None,
    ):
        assert safe_next(hostile) == "/"


async def test_sign_in_returns_to_the_page_asked_for_and_sign_out_ends_it(
    context: BrowserContext, stack: Stack, screenshots: Path
) -> None:
    page = await context.new_page()
    await page.goto("/?tab=a&b=c")
    await page.wait_for_url("**/login?next=*")
    await page.screenshot(path=screenshots / "login.png", full_page=True)
    await page.fill("#token", "jst_not-a-token")
    await page.click("button[type=submit]")
    await expect(page.locator(".field-error")).to_have_text("token: unknown, revoked or expired")
    await page.fill("#token", stack.admin_token)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/?tab=a&b=c")
    cookie = next(c for c in await context.cookies() if c["name"] == "jetscan_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    await page.goto("/")
    await expect(page.locator(".principal")).to_contain_text("admin")
    await page.click("text=Sign out")
    await page.wait_for_url("**/login")
    await page.goto("/")
    await page.wait_for_url("**/login?next=%2F")


async def test_a_revoked_token_ends_the_session_within_a_second(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = await new_token(stack, Role.VIEWER, "portal-revoke")
    cookie, _ = await session_of(http, token)
    assert (await http.get("/", headers=with_session(cookie))).status_code == 200
    nc = await nats.connect(stack.settings.nats_url)
    try:
        await tokens.revoke(nc.jetstream(), "portal-revoke")
    finally:
        await nc.drain()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while (await http.get("/", headers=with_session(cookie))).status_code == 200:
        assert loop.time() < deadline, "the session outlived its token by a second"
        await asyncio.sleep(0.05)
    reply = await http.get("/", headers=with_session(cookie))
    assert reply.status_code == 303 and reply.headers["location"] == "/login?next=%2F"


async def test_a_viewer_sees_no_operator_controls(
    context: BrowserContext, stack: Stack, screenshots: Path
) -> None:
    page = await context.new_page()
    await sign_in(page, await new_token(stack, Role.VIEWER, "portal-viewer-nav"))
    await expect(page.locator(".principal")).to_contain_text("viewer")
    await expect(page.locator("a", has_text="New scan")).to_have_count(0)
    reply = await page.goto("/scans/new")
    assert reply is not None and reply.status == 403
    await expect(page.locator("h1")).to_have_text("403 · Not allowed")
    await expect(page.locator(".message")).to_contain_text("needs role operator")
    await page.screenshot(path=screenshots / "forbidden.png")
    reply = await page.goto("/scans/no-such-scan")
    assert reply is not None and reply.status == 404
    await expect(page.locator(".message")).to_contain_text("no-such-scan")


def test_cookies_are_secure_over_https_or_behind_it(settings: Settings) -> None:
    assert not secure_cookies(settings)
    assert secure_cookies(msgspec.structs.replace(settings, public_url="https://scan.example"))
    assert secure_cookies(msgspec.structs.replace(settings, tls_cert="/etc/edge.pem"))
    for secure, name in ((True, "__Host-jetscan_session"), (False, "jetscan_session")):
        response = Response()
        SessionStore(TokenCache(), secure=secure).set_cookie(response, "c00kie")
        header = response.headers["set-cookie"]
        assert header.startswith(f"{name}=c00kie;")
        assert "HttpOnly" in header and "SameSite=lax" in header and "Path=/" in header
        assert ("Secure" in header) is secure and "Domain" not in header
