"""The scan pages in Chromium against the real stack: start an nmap scan from the form,
watch it live, read its findings, filter the list by URL, cancel, and the form's refusals
in the API's own words."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from grpclib import GRPCError
from playwright.async_api import Page, expect

from contracts.auth import Role
from contracts.gen.jetscan import v1
from tests.conftest import Stack, scan_service, wait_status
from tests.edge.test_audit import _audit
from tests.handlers.test_lifecycle import nmap_request
from tests.portal.conftest import new_token, session_of, with_session

pytestmark = pytest.mark.slow
LIVE = 60_000  # ms a scan may take on a loaded machine


async def _start_from_form(page: Page, ports: str, timing: str) -> str:
    await page.goto("/scans/new")
    await page.fill("#target", "127.0.0.1")
    await page.select_option("#tool", "nmap")
    await page.fill("#opt-nmap-ports", ports)
    await page.fill("#opt-nmap-timing", timing)
    await page.uncheck("#opt-nmap-reverse_dns")
    await page.click("#start-form button[type=submit]")
    await page.wait_for_url("**/scans/*")
    return page.url.rsplit("/", 1)[-1]


async def test_start_watch_live_and_see_findings(
    operator_page: Page, stack: Stack, open_port: int, screenshots: Path
) -> None:
    page = operator_page
    await page.goto("/scans/new")
    # Only the chosen tool's options show.
    await expect(page.locator("fieldset[data-tool=nmap]")).to_be_visible()
    await expect(page.locator("fieldset[data-tool=zap]")).to_be_hidden()
    await page.screenshot(path=screenshots / "scan_new.png", full_page=True)
    scan_id = await _start_from_form(page, f"1-3,{open_port}", "2")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    shown_at_load = int(await page.locator("#console").get_attribute("data-after") or "0")
    first_status = await page.locator("#live-status").get_attribute("data-status")
    assert first_status in ("queued", "launching", "running"), first_status
    # Lines arrive over the WebSocket after the page was drawn.
    await expect(page.locator("#console .line").nth(shown_at_load)).to_be_attached(timeout=LIVE)
    await page.screenshot(path=screenshots / "scan_running.png", full_page=True)
    await expect(page.locator("#live-status .status")).to_have_text("succeeded", timeout=LIVE)
    assert navigations == [], "the page reloaded"
    # Its findings, drawn by the server once it ended, with the word next to the colour.
    badge = page.locator("#findings-table .sev").first
    await expect(badge).to_have_text("info", timeout=15_000)
    await expect(badge).to_have_class("sev sev-info")
    await expect(page.locator("#findings-table")).to_contain_text(f"127.0.0.1:{open_port}/tcp")
    await expect(page.locator("#detail-exit")).to_have_text("0")
    await page.screenshot(path=screenshots / "scan_done.png", full_page=True)
    # The console replays from line 1 on a fresh load, and downloads raw.
    await page.reload()
    await expect(page.locator("#console .line .seq").first).to_have_text("1")
    await page.fill("#console-search", f"{open_port}/tcp")
    hits = await page.locator("#console .line.hit").count()
    assert hits >= 2  # "Discovered open port N/tcp" and the port table's row
    await expect(page.locator("#search-count")).to_have_text(f"{hits} matching lines")
    await page.fill("#console-search", "")
    await expect(page.locator("#console .line.hit")).to_have_count(0)
    follow = page.locator("#follow")  # a search hit paused following, to show the hit
    await expect(follow).to_have_attribute("aria-pressed", "false")
    await expect(follow).to_have_text("Follow")
    await follow.click()
    await expect(follow).to_have_attribute("aria-pressed", "true")
    await expect(follow).to_have_text("Pause auto-scroll")
    # The findings' filters are GET parameters of the scan page.
    await page.select_option("#ff-severity", "high")
    await page.click("#findings form.filters button[type=submit]")
    await page.wait_for_url("**severity=high**")
    await expect(page.locator("#findings-table .sev")).to_have_count(0)
    await page.goto(f"/scans/{scan_id}?change=new")
    await expect(page.locator("#findings-table .sev")).to_have_count(1)
    await expect(page.locator("#findings-table")).to_contain_text("new")
    async with page.expect_download() as download:
        await page.click("text=Raw download")
    raw = Path(await (await download.value).path()).read_text()
    assert "Nmap" in raw and f"{open_port}/tcp" in raw
    # The list, filtered by tool and status: the URL is the filter, and a reload keeps it.
    await page.goto("/scans")
    await page.select_option("#f-tool", "nmap")
    await page.select_option("#f-status", "succeeded")
    await page.click("#scan-filters button[type=submit]")
    await page.wait_for_url("**/scans?*tool=nmap*")
    assert "status=succeeded" in page.url
    rows = page.locator("table.scans tbody tr[data-scan]")
    ids = await rows.evaluate_all("rows => rows.map(r => r.dataset.scan)")
    assert scan_id in ids
    for cell in await page.locator("table.scans tbody tr[data-scan] td:nth-child(3)").all():
        await expect(cell).to_have_text("succeeded")
    await page.screenshot(path=screenshots / "scans.png", full_page=True)
    await page.reload()
    assert await rows.evaluate_all("rows => rows.map(r => r.dataset.scan)") == ids
    await expect(page.locator("#f-tool")).to_have_value("nmap")
    await page.goto("/")
    await expect(page.locator("#by-status")).to_contain_text("succeeded")
    await expect(page.locator("#open-findings svg rect")).to_have_count(5)
    await page.screenshot(path=screenshots / "overview.png", full_page=True)
    # Re-run: the same tool, target, options and deadline, as a new scan.
    await page.goto(f"/scans/{scan_id}")
    await page.click("text=Re-run")
    await page.wait_for_url("**/scans/*")
    again = page.url.rsplit("/", 1)[-1]
    assert again != scan_id
    await expect(page.locator("#config pre")).to_contain_text(f'"ports": "1-3,{open_port}"')
    await expect(page.locator("#live-status .status")).to_have_text("succeeded", timeout=LIVE)


async def test_cancel_a_running_scan_and_a_viewer_may_not(
    operator_page: Page, stack: Stack, http: httpx.AsyncClient, screenshots: Path
) -> None:
    page = operator_page
    scan_id = await _start_from_form(page, "1-3", "0")  # -T0: minutes between probes
    async with scan_service(stack) as scans:
        await wait_status(scans, scan_id, {v1.ScanStatus.RUNNING})
        # A viewer's forged-free, same-site POST with its own form token: still refused.
        cookie, csrf = await session_of(http, await new_token(stack, Role.VIEWER, "ui-viewer"))
        own = str(http.base_url).rstrip("/")
        refused = await http.post(
            f"/scans/{scan_id}/cancel",
            data={"csrf": csrf},
            headers=with_session(cookie, Origin=own),
        )
        assert refused.status_code == 403 and "needs role operator" in refused.text
        viewer_page = await http.get(f"/scans/{scan_id}", headers=with_session(cookie))
        assert "Cancel scan" not in viewer_page.text and "Re-run" not in viewer_page.text
        assert (await scans.get_scan(v1.GetScanRequest(id=scan_id))).status == (
            v1.ScanStatus.RUNNING
        )
        await page.reload()
        await expect(page.locator("#live-status .status")).to_have_text("running")
        await page.screenshot(path=screenshots / "scan_console_live.png", full_page=True)
        # The list in another tab follows the status too, without a reload.
        listing = await page.context.new_page()
        await listing.goto("/scans?tool=nmap&target=127.0.0.1")
        row_status = listing.locator(f"tr[data-scan='{scan_id}'] .status")
        await expect(row_status).to_have_text("running")
        navigations: list[str] = []
        listing.on("framenavigated", lambda frame: navigations.append(frame.url))
        await page.click("text=Cancel scan")
        await page.wait_for_url(f"**/scans/{scan_id}")
        await expect(page.locator("#live-status .status")).to_have_text("cancelled", timeout=LIVE)
        await wait_status(scans, scan_id, {v1.ScanStatus.CANCELLED})
        await expect(row_status).to_have_text("cancelled", timeout=15_000)
        assert navigations == []
        await listing.close()
    # Recorded as the RPCs are, through the portal's door, with their outcome; the
    # viewer's refusal is not (it never reached the method).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:  # ingest copies the records into the table the CLI reads
        records = await _audit(stack, "--who", "admin")
        ui = {(r["action"], r["target"], r["outcome"]) for r in records if r["source"] == "ui"}
        if ("CancelScan", scan_id, "OK") in ui or loop.time() > deadline:
            break
        await asyncio.sleep(0.3)
    assert ("CancelScan", scan_id, "OK") in ui
    assert ("StartScan", "nmap 127.0.0.1", "OK") in ui
    assert not [r for r in await _audit(stack, "--who", "ui-viewer") if r["source"] == "ui"]


async def test_a_refused_start_names_the_field_in_the_api_s_words(
    operator_page: Page, stack: Stack, screenshots: Path
) -> None:
    page = operator_page
    async with scan_service(stack) as scans:
        for target, ports, field in (
            ("127.0.0.1", "0", "config.ports"),
            ("192.0.2.10", "80", "target"),
            ("", "80", "target"),
        ):
            request = nmap_request(ports)
            request.target = target
            with pytest.raises(GRPCError) as grpc_refusal:
                await scans.start_scan(request)
            await page.goto("/scans/new")
            await page.fill("#target", target)
            await page.fill("#opt-nmap-ports", ports)
            await page.uncheck("#opt-nmap-reverse_dns")
            await page.click("#start-form button[type=submit]")
            error = page.locator(".field-error")
            await expect(error).to_have_count(1)
            await expect(error).to_have_text(grpc_refusal.value.message or "")
            assert (grpc_refusal.value.message or "").startswith(f"{field}: ")
            # Next to its own field, and the form keeps what was typed.
            if field == "target":
                await expect(page.locator("#target")).to_have_attribute("aria-invalid", "true")
            else:
                await expect(page.locator("#opt-nmap-ports")).to_have_value(ports)
                await expect(page.locator("#opt-nmap-reverse_dns")).not_to_be_checked()
            await page.screenshot(path=screenshots / f"scan_new_refused_{field}.png")


async def test_a_scan_started_from_the_portal_says_so(
    operator_page: Page, stack: Stack, http: httpx.AsyncClient, open_port: int
) -> None:
    page = operator_page
    scan_id = await _start_from_form(page, str(open_port), "4")
    started_by = page.locator("dt:text-is('Started by') + dd")
    await expect(started_by).to_contain_text("via portal")
    async with scan_service(stack) as scans:
        api = await scans.start_scan(nmap_request(open_port))
        for done in (
            await wait_status(scans, scan_id, {v1.ScanStatus.SUCCEEDED}),
            await wait_status(scans, api.id, {v1.ScanStatus.SUCCEEDED}),
        ):
            assert done.trigger == ("portal" if done.id == scan_id else "api")
    # As stored, not only as queued: the page drawn again from the projection.
    await page.reload()
    await expect(started_by).to_contain_text("via portal")
    await page.goto(f"/scans/{api.id}")
    await expect(started_by).to_contain_text("via api")
    # Its re-run is the portal's own start.
    await page.click("text=Re-run")
    await page.wait_for_url(lambda url: not url.endswith(api.id))
    await expect(started_by).to_contain_text("via portal")
    async with scan_service(stack) as scans:
        again = page.url.rsplit("/", 1)[-1]
        assert (await wait_status(scans, again, {v1.ScanStatus.SUCCEEDED})).trigger == "portal"
