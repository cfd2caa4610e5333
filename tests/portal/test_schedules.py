"""The schedule pages in Chromium against the real stack: the next five runs previewed as
the expression is typed (and, without JavaScript, after a submit), create, see the next runs
on the schedule's clock and in UTC, pause with a note, resume, run now, run history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from contracts import cron
from contracts.gen.jetscan import v1
from edge.portal.scheduleform import fire_time
from tests.conftest import Stack, scan_service
from tests.portal.conftest import base_url, sign_in

pytestmark = pytest.mark.slow
ZONE = "Europe/Berlin"


def expected(expr: str, zone: str) -> list[str]:
    """The next five fire times as the scheduler computes them, as the page shows them."""
    times = cron.fire_times(cron.parse(expr, zone), datetime.now(UTC), 5)
    return [f"{fire_time(t, zone).local}{fire_time(t, zone).utc}" for t in times]


async def _fill(page: Page, target: str, expr: str, zone: str) -> None:
    await page.fill("#s-target", target)
    await page.select_option("#tool", "nmap")
    await page.fill("#opt-nmap-ports", "1")
    await page.uncheck("#opt-nmap-reverse_dns")
    await page.fill("#s-timezone", zone)
    await page.fill("#s-cron", expr)


async def test_create_a_schedule_and_see_its_next_runs(
    operator_page: Page, stack: Stack, screenshots: Path
) -> None:
    page = operator_page
    await page.goto("/schedules/new")
    await _fill(page, "127.0.0.1", "15 4 * * mon-fri", ZONE)
    # Previewed as typed, by the server's cron code (the scheduler's).
    items = page.locator("#fire-times li")
    await expect(items).to_have_text(expected("15 4 * * mon-fri", ZONE))
    await page.fill("#s-cron", "15 4 * *")
    await expect(page.locator("#cron-preview .field-error")).to_contain_text("cron: expected five")
    await expect(items).to_have_count(0)
    await page.fill("#s-cron", "*/20 9-17 * * *")
    await expect(items).to_have_text(expected("*/20 9-17 * * *", ZONE))
    await page.screenshot(path=screenshots / "schedule_new.png", full_page=True)
    # The tool's options are the start form's; only the chosen tool's show.
    await expect(page.locator("fieldset[data-tool=nmap]")).to_be_visible()
    await expect(page.locator("fieldset[data-tool=zap]")).to_be_hidden()
    # A refusal of the ScheduleService is named next to its field.
    await page.fill("#opt-nmap-ports", "0")
    await page.click("#schedule-form button.primary")
    await expect(page.locator("fieldset[data-tool=nmap] .field-error")).to_contain_text(
        "config.ports: port 0 is out of range"
    )
    await page.fill("#opt-nmap-ports", "1")
    await page.uncheck("#opt-nmap-reverse_dns")
    await page.click("#schedule-form button.primary")
    await page.wait_for_url("**/schedules/*?saved=1")
    schedule_id = page.url.split("/schedules/")[1].split("?")[0]
    await expect(page.locator("#edit #fire-times li")).to_have_text(
        expected("*/20 9-17 * * *", ZONE)
    )
    # The list: next run on the schedule's clock (CET/CEST) and in UTC.
    await page.goto("/schedules")
    row = page.locator(f"#schedules tr:has(a[href='/schedules/{schedule_id}'])")
    first = expected("*/20 9-17 * * *", ZONE)[0]
    local = fire_time(
        cron.fire_times(cron.parse("*/20 9-17 * * *", ZONE), datetime.now(UTC), 1)[0], ZONE
    )
    await expect(row.locator("td").nth(3)).to_have_text(local.local)
    await expect(row.locator("td").nth(4)).to_have_text(local.utc)
    assert first.startswith(local.local)
    await page.screenshot(path=screenshots / "schedules.png", full_page=True)

    # Pause with a note, resume, run now: each through the ScheduleService.
    await page.goto(f"/schedules/{schedule_id}")
    await page.fill("#p-note", "maintenance window <b>friday</b>")
    await page.click("#pause")
    await page.wait_for_url("**?paused=1")
    await expect(page.locator(".pagehead .paused")).to_have_text("paused")
    await expect(page.locator("#state")).to_contain_text("maintenance window <b>friday</b>")
    await page.click("#resume")
    await page.wait_for_url("**?resumed=1")
    await expect(page.locator(".pagehead .up")).to_have_text("active")
    await page.click("#run-now")
    await page.wait_for_url("**/scans/*")
    scan_id = page.url.rsplit("/", 1)[-1]
    async with scan_service(stack) as scans:
        scan = await scans.get_scan(v1.GetScanRequest(id=scan_id))
    assert scan.schedule_id == schedule_id and scan.trigger == "manual"
    await page.goto(f"/schedules/{schedule_id}")
    history = page.locator("#history tbody tr[data-row]")
    await expect(history.first).to_contain_text("manual", timeout=30_000)
    await expect(history.first.locator(f"a[href='/scans/{scan_id}']")).to_have_count(1)
    await page.screenshot(path=screenshots / "schedule.png", full_page=True)


async def test_without_javascript_the_form_previews_after_a_submit(
    browser: Browser, stack: Stack
) -> None:
    ctx = await browser.new_context(base_url=base_url(stack), java_script_enabled=False)
    try:
        page = await ctx.new_page()
        await sign_in(page, stack.admin_token, "/schedules/new")
        await _fill(page, "127.0.0.1", "0 2 * * 0", "America/New_York")
        # The default expression's runs: nothing previews as the fields change.
        await expect(page.locator("#fire-times li")).to_have_text(expected("0 3 * * *", "UTC"))
        await page.click("#schedule-form button[name=preview]")
        await expect(page.locator("#fire-times li")).to_have_text(
            expected("0 2 * * 0", "America/New_York")
        )
        # Nothing was created; a bad zone is named next to its field.
        await page.fill("#s-timezone", "Mars/Olympus")
        await page.click("#schedule-form button[name=preview]")
        await expect(page.locator("#timezone-error")).to_contain_text("unknown IANA time zone")
    finally:
        await ctx.close()
