"""Scanner output is hostile: a local server whose banner is markup, script, a
`javascript:` URL, template syntax and ANSI escapes, scanned for real, shown in Chromium
as text, with no dialog, no script and no console error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Dialog, Page, expect

from contracts.gen.jetscan import v1
from tests.conftest import Stack, scan_service, wait_status
from tests.handlers.test_lifecycle import nmap_request

pytestmark = pytest.mark.slow
BANNER = (
    '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    " javascript:alert(3) {{7*7}} {% raw %} \x1b[31mred\x1b[0m"
)


@pytest.fixture
async def hostile_port() -> AsyncIterator[int]:
    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BANNER.encode() + b"\r\n")
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_hostile_banner_is_shown_as_text(
    operator_page: Page, stack: Stack, hostile_port: int, screenshots: Path
) -> None:
    page = operator_page
    dialogs: list[str] = []
    errors: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("dialog", dismiss)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    async with scan_service(stack) as scans:
        started = await scans.start_scan(nmap_request(hostile_port, scripts=["banner"]))
        await page.goto(f"/scans/{started.id}")  # live: the banner arrives over the socket
        await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED})
    console = page.locator("#console")
    await expect(console).to_contain_text("onerror=alert(2)", timeout=30_000)
    await expect(page.locator("#live-status .status")).to_have_text("succeeded", timeout=30_000)
    await page.reload()  # and drawn by the server
    await expect(console).to_contain_text("onerror=alert(2)")
    assert await page.locator("img[src=x], #console script, #console img").count() == 0
    assert await page.locator("a[href^=javascript]").count() == 0
    await page.screenshot(path=screenshots / "scan_hostile.png", full_page=True)
    assert dialogs == [] and errors == []
