"""The portal against another site: forged POSTs, a hijacked WebSocket, and the security
headers on every response."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from contracts.gen.jetscan import v1
from edge.portal.security import CSP
from tests.conftest import Stack, scan_service, wait_status
from tests.handlers.test_lifecycle import slow_nmap
from tests.portal.conftest import session_of, with_session

EVIL = "https://evil.example"


def _headers_ok(reply: httpx.Response) -> None:
    where = f"{reply.request.method} {reply.request.url.path} ({reply.status_code})"
    assert reply.headers.get("content-security-policy") == CSP, where
    assert reply.headers.get("x-content-type-options") == "nosniff", where
    assert reply.headers.get("referrer-policy") == "same-origin", where


def test_the_policy_names_every_directive_the_issue_asks_for() -> None:
    directives = {d.split()[0]: d for d in CSP.split("; ")}
    assert directives["default-src"] == "default-src 'self'"
    assert directives["script-src"] == "script-src 'self'"  # no 'unsafe-inline'
    assert directives["style-src"] == "style-src 'self'"
    assert directives["object-src"] == "object-src 'none'"
    assert directives["base-uri"] == "base-uri 'none'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert directives["form-action"] == "form-action 'self'"
    assert "unsafe" not in CSP


async def test_every_response_carries_the_security_headers(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    cookie, csrf = await session_of(http, stack.admin_token)
    anonymous = [
        ("GET", "/"),
        ("GET", "/login"),
        ("GET", "/login?next=/scans"),
        ("GET", "/static/portal.css"),
        ("GET", "/static/no-such-file.js"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/no/such/page"),
        ("GET", "/reports/r1/report.pdf"),
        ("POST", "/logout"),
        ("POST", "/login"),
        ("PUT", "/login"),
    ]
    for method, path in anonymous:
        _headers_ok(await http.request(method, path))
    signed_in = [
        ("GET", "/"),
        ("GET", "/login"),
        ("GET", "/static/portal.css"),
        ("GET", "/no/such/page"),
    ]
    for method, path in signed_in:
        _headers_ok(await http.request(method, path, headers=with_session(cookie)))
    css = await http.get("/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    refused = await http.post(
        "/logout", data={"csrf": csrf}, headers=with_session(cookie, Origin=EVIL)
    )
    assert refused.status_code == 403
    _headers_ok(refused)


async def test_a_post_from_another_site_or_without_the_form_token_is_refused(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    cookie, csrf = await session_of(http, stack.admin_token)
    own = str(http.base_url).rstrip("/")
    forged = [
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Origin": own.replace("127.0.0.1", "localhost")},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": own, "Sec-Fetch-Site": "cross-site"},
        {},  # neither header: not a browser's same-site form
    ]
    for headers in forged:
        reply = await http.post(
            "/logout", data={"csrf": csrf}, headers=with_session(cookie, **headers)
        )
        assert reply.status_code == 403, headers
        assert "Cross-site request refused" in reply.text
    for form in ({}, {"csrf": ""}, {"csrf": csrf[:-1] + "x"}):
        reply = await http.post("/logout", data=form, headers=with_session(cookie, Origin=own))
        assert reply.status_code == 403, form
        assert "form token" in reply.text
    # Still signed in: none of the refused sign-outs took effect.
    assert (await http.get("/", headers=with_session(cookie))).status_code == 200
    # Signing a browser in from another site is refused too (login CSRF).
    reply = await http.post("/login", data={"token": stack.admin_token}, headers={"Origin": EVIL})
    assert reply.status_code == 403 and "set-cookie" not in reply.headers
    # And the real thing works.
    reply = await http.post(
        "/logout",
        data={"csrf": csrf},
        headers=with_session(cookie, Origin=own, **{"Sec-Fetch-Site": "same-origin"}),
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/login"
    assert (await http.get("/", headers=with_session(cookie))).status_code == 303


async def _close_code(url: str, headers: dict[str, str]) -> int | None:
    async with connect(url, additional_headers=headers, compression=None) as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    return ws.close_code


async def test_the_console_socket_takes_the_session_but_not_from_another_site(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    cookie, _ = await session_of(http, stack.admin_token)
    own = str(http.base_url).rstrip("/")
    url = f"ws://{stack.settings.http_addr}/ws/scans/no-such-scan"
    # Signed in, same site: authenticated, so the answer is about the scan.
    assert await _close_code(url, with_session(cookie, Origin=own)) == 4404
    # The same cookie sent by a page of another site: refused before it counts.
    assert await _close_code(url, with_session(cookie, Origin=EVIL)) == 4403
    # A bearer token is no pass for another site either.
    bearer = {"Authorization": f"Bearer {stack.admin_token}", "Origin": EVIL}
    assert await _close_code(url, bearer) == 4403
    # No cookie, no token.
    assert await _close_code(url, {"Origin": own}) == 4401
    assert await _close_code(url, with_session("forged-cookie", Origin=own)) == 4401


async def test_signing_out_closes_the_session_s_open_console(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    async with scan_service(stack) as scans:
        started = await scans.start_scan(slow_nmap())
        try:
            await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
            cookie, csrf = await session_of(http, stack.admin_token)
            own = str(http.base_url).rstrip("/")
            url = f"ws://{stack.settings.http_addr}/ws/scans/{started.id}"
            async with connect(url, additional_headers=with_session(cookie, Origin=own)) as ws:
                first = json.loads(await ws.recv())
                assert first["type"] == "status"
                reply = await http.post(
                    "/logout", data={"csrf": csrf}, headers=with_session(cookie, Origin=own)
                )
                assert reply.status_code == 303

                async def until_closed() -> None:
                    with contextlib.suppress(ConnectionClosed):
                        async for _ in ws:
                            pass

                # Within the session poll (0.5 s) and a margin: the issue's second.
                await asyncio.wait_for(until_closed(), 1.0)
                assert ws.close_code == 4401
        finally:
            await scans.cancel_scan(v1.CancelScanRequest(id=started.id))
