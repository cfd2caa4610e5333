"""Injection through every scanner-controlled field, by a real scan: two local services whose
banners are markup, script, `javascript:` URLs, template syntax and ANSI escapes, found by
nmap with version detection and its banner script (into service fingerprints, script output,
evidence and the console), then shown in Chromium on the scan, findings and report pages:
no dialog, no script run, no console error, the text shown as text, and the CSP header on
every response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import ConsoleMessage, Dialog, Page, Response, expect

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from tests.conftest import Stack, all_findings, scan_service, wait_status
from tests.portal.conftest import session_of, with_session

pytestmark = pytest.mark.slow
PAYLOAD = (
    '<script>alert("s")</script>"><img src=x onerror=alert(1)>'
    " javascript:alert(2) {{7*7}} ${7*7} {% raw %} \x1b[31mred\x1b[0m"
)
# Each a greeting nmap's version detection names at once (the NULL probe), so the scan takes
# seconds: an unknown service would be sent every probe nmap has.
GREETINGS = (
    f"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 {PAYLOAD}",
    f"220 {PAYLOAD} ESMTP Postfix",
)


@pytest.fixture
async def hostile_ports() -> AsyncIterator[list[int]]:
    servers = []

    def greeter(text: str):  # type: ignore[no-untyped-def]
        async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(text.encode() + b"\r\n")
                await writer.drain()
                await asyncio.sleep(2)
            except ConnectionError:
                pass  # nmap hung up first
            finally:
                writer.close()

        return greet

    for text in GREETINGS:
        servers.append(await asyncio.start_server(greeter(text), "127.0.0.1", 0))
    try:
        yield [s.sockets[0].getsockname()[1] for s in servers]
    finally:
        for s in servers:
            s.close()
            await s.wait_closed()


class Watch:
    """What a hostile page could make Chromium do, and every response's CSP header."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.without_csp: list[str] = []
        self.responses = 0
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("response", self._response)

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _response(self, response: Response) -> None:
        self.responses += 1
        csp = response.headers.get("content-security-policy", "")
        if "default-src 'self'" not in csp or "unsafe-" in csp:
            self.without_csp.append(response.url)


async def _inert(page: Page) -> None:
    """Nothing the payload carries became markup on this page."""
    assert await page.locator("img[src=x], img[onerror]").count() == 0
    assert await page.locator("a[href^='javascript' i]").count() == 0
    inline = await page.evaluate(
        "[...document.scripts].filter(s => !s.src || !s.src.startsWith(location.origin"
        " + '/static/')).length"
    )
    assert inline == 0


async def test_hostile_banners_through_every_page(
    operator_page: Page,
    stack: Stack,
    hostile_ports: list[int],
    http: httpx.AsyncClient,
    screenshots: Path,
) -> None:
    page = operator_page
    watch = Watch(page)
    ports = ",".join(map(str, hostile_ports))
    config = {
        "ports": ports,
        "service_detection": True,
        "scripts": ["banner"],
        "reverse_dns": False,
        "timing": 4,
    }
    async with scan_service(stack) as scans:
        started = await scans.start_scan(
            v1.StartScanRequest(target="127.0.0.1", tool="nmap", config=Struct.from_dict(config))
        )
        await page.goto(f"/scans/{started.id}")  # the console arrives live
        await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED}, within=120)
        findings = await all_findings(scans, started.id)
    assert {f.port for f in findings} == set(hostile_ports)
    console = page.locator("#console")
    await expect(console).to_contain_text("onerror=alert(1)", timeout=30_000)
    await _inert(page)
    await page.reload()
    await expect(console).to_contain_text("{{7*7}}")
    await expect(page.locator("#findings-table")).to_contain_text("ssh")
    await _inert(page)
    await page.screenshot(path=screenshots / "injection_scan.png", full_page=True)

    # The list, page after page (other tests' findings of 127.0.0.1 share it): both are
    # listed, on pages that keep the filter.
    await page.goto("/findings?target=127.0.0.1&tool=nmap&state=open")
    wanted = {f"/findings/{f.id}" for f in findings}
    for _ in range(100):
        await _inert(page)
        links = await page.locator("#findings tbody a").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        )
        wanted -= set(links)
        more = page.locator("a[rel=next]")
        if not wanted or not await more.count():
            break
        await more.click()
        await page.wait_for_url("**/findings?*page=*")
        assert "target=127.0.0.1" in page.url and "state=open" in page.url
    assert wanted == set()
    for f in findings:
        await page.goto(f"/findings/{f.id}")
        evidence = page.locator("#evidence pre")
        # Shown as text (JSON, so a control character is an escape), template syntax untouched.
        # (nmap wraps the banner's lines, and writes the escape as `\x1B`.)
        for text in ("<img src=x onerror=alert(1)>", "javascript:alert(2)", "{{7*7}}", r"\x1B[31m"):
            await expect(evidence).to_contain_text(text)
        await _inert(page)
    await page.screenshot(path=screenshots / "injection_finding.png", full_page=True)

    await page.goto(f"/reports?scan_id={started.id}")
    await page.click("#generate button[type=submit]")  # PDF and JSON, the form's default
    await page.wait_for_url("**/reports?generated=*")
    await _inert(page)
    ids = await page.locator("#requested td:first-child a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    cookie, _ = await session_of(http, stack.admin_token)
    for link in ids:
        await page.goto(link)
        await expect(page.locator("#report-status")).to_have_text("ready", timeout=90_000)
        await _inert(page)
        name = (await page.locator("#download").get_attribute("href")) or ""
        download = await http.get(name, headers=with_session(cookie))
        assert download.status_code == 200
        assert "default-src 'self'" in download.headers["content-security-policy"]
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-disposition"].startswith("attachment")
        if name.endswith(".json"):
            assert "onerror=alert(1)" in download.text  # the data, kept verbatim
    await page.screenshot(path=screenshots / "injection_report.png", full_page=True)
    for path in ("/", "/scans", "/findings", "/reports", "/schedules"):
        await page.goto(path)
        await _inert(page)

    assert watch.dialogs == []
    assert watch.errors == []
    assert watch.responses > 20 and watch.without_csp == []
