"""The findings pages in Chromium against the real stack: a real nmap scan's finding, found
through the URL's filters, triaged from its page (with the refusals next to their fields),
and a viewer who gets no controls and whose POST is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from contracts.auth import Role
from contracts.gen.jetscan import v1
from tests.conftest import Stack, all_findings, scan_service, wait_status
from tests.handlers.test_lifecycle import nmap_request
from tests.portal.conftest import new_token, session_of, with_session

pytestmark = pytest.mark.slow


async def _scanned_finding(stack: Stack, port: int) -> tuple[str, str]:
    """(scan id, finding id) of a real nmap scan that found `port` open."""
    async with scan_service(stack) as scans:
        started = await scans.start_scan(nmap_request(port))
        await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED}, within=90)
        found = await all_findings(scans, started.id)
    (finding,) = [f for f in found if f.port == port]
    return started.id, finding.id


async def _page_with(page: Page, row: Locator) -> None:
    """Follow the list's "Next page" links (which keep the filter) until `row` is on the
    page: other tests' findings of 127.0.0.1 share the list."""
    kept = [part for part in page.url.split("?", 1)[1].split("&") if not part.endswith("=")]
    for _ in range(100):
        if await row.count():
            return
        await page.click("a[rel=next]")
        await page.wait_for_url("**/findings?*page=*")
        assert all(part in page.url for part in kept), page.url
    raise AssertionError("the finding is on none of the pages")


async def test_find_filter_and_triage_a_finding(
    operator_page: Page,
    stack: Stack,
    open_port: int,
    http: httpx.AsyncClient,
    screenshots: Path,
) -> None:
    page = operator_page
    scan_id, finding_id = await _scanned_finding(stack, open_port)
    # The URL is the filter: the form writes it, a reload keeps it.
    await page.goto("/findings")
    await page.fill("#f-target", "127.0.0.1")
    await page.select_option("#f-severity", "info")
    await page.select_option("#f-state", "open")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url("**/findings?*target=127.0.0.1*")
    assert "severity=info" in page.url and "state=open" in page.url
    row = page.locator(f"#findings tbody tr[data-row]:has(a[href='/findings/{finding_id}'])")
    await _page_with(page, row)
    await expect(row.locator(".sev")).to_have_text("info")
    for badge in await page.locator("#findings .sev").all():
        await expect(badge).to_have_text("info")
    await page.reload()
    await expect(row).to_have_count(1)
    await expect(page.locator("#f-severity")).to_have_value("info")
    await page.screenshot(path=screenshots / "findings.png", full_page=True)
    # Another severity leaves it out; a value the API does not know is named next to its field.
    await page.goto("/findings?target=127.0.0.1&severity=high")
    for badge in await page.locator("#findings .sev").all():
        await expect(badge).to_have_text("high")
    await page.goto("/findings?target=127.0.0.1&severity=urgent")
    await expect(page.locator("#severity-error")).to_contain_text("unknown value 'urgent'")
    await page.goto("/findings?tool=nope")
    await expect(page.locator("#tool-error")).to_contain_text("unknown tool")

    await page.goto(f"/findings/{finding_id}")
    await expect(page.locator("#occurrences")).to_contain_text(scan_id[:12])
    await expect(page.locator("#evidence")).to_contain_text("syn-ack")
    # Accepting a risk needs a reason: the refusal, in TriageFinding's words, at the field.
    await page.check("input[name=triage][value=accepted_risk]")
    await page.click("form.triageform button[type=submit]")
    await expect(page.locator("#reason-error")).to_have_text("required to accept a risk")
    await expect(page.locator("#t-reason")).to_have_attribute("aria-invalid", "true")
    await page.screenshot(path=screenshots / "finding_refused.png", full_page=True)
    until = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    await page.check("input[name=triage][value=accepted_risk]")
    await page.fill("#t-reason", "lab host, closed <b>next</b> sprint")
    await page.fill("#t-until", until)
    await page.select_option("#t-override", "low")
    await page.click("form.triageform button[type=submit]")
    await page.wait_for_url(f"**/findings/{finding_id}?triaged=1")
    await expect(page.locator("#history tbody tr").first).to_contain_text("accepted risk")
    await expect(page.locator("#history")).to_contain_text("closed <b>next</b> sprint")
    await expect(page.locator("#about .sev").first).to_have_text("low")
    await page.screenshot(path=screenshots / "finding.png", full_page=True)
    async with scan_service(stack) as scans:
        stored = await scans.get_finding(v1.GetFindingRequest(id=finding_id))
    assert stored.triage == v1.Triage.ACCEPTED_RISK
    assert stored.severity_override == v1.Severity.LOW
    assert stored.triage_until is not None
    assert stored.triage_until.strftime("%Y-%m-%dT%H:%M") == until
    # Back to no triage: it counts again, and the history keeps both decisions.
    await page.check("input[name=triage][value=none]")
    await page.fill("#t-reason", "")
    await page.fill("#t-until", "")
    await page.select_option("#t-override", "")
    await page.click("form.triageform button[type=submit]")
    await page.wait_for_url(f"**/findings/{finding_id}?triaged=1")
    await expect(page.locator("#history tbody tr")).to_have_count(2)

    # A viewer: no triage controls, and its own same-site POST with its own form token is
    # refused all the same.
    cookie, csrf = await session_of(http, await new_token(stack, Role.VIEWER, "ui-viewer-f"))
    shown = await http.get(f"/findings/{finding_id}", headers=with_session(cookie))
    assert shown.status_code == 200
    assert "triageform" not in shown.text and "Save triage" not in shown.text
    own = str(http.base_url).rstrip("/")
    refused = await http.post(
        f"/findings/{finding_id}/triage",
        data={"csrf": csrf, "triage": "false_positive"},
        headers=with_session(cookie, Origin=own),
    )
    assert refused.status_code == 403 and "needs role operator" in refused.text
    async with scan_service(stack) as scans:
        after = await scans.get_finding(v1.GetFindingRequest(id=finding_id))
    assert after.triage == v1.Triage.NONE and len(after.history) == 2
