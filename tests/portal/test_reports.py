"""The report pages in Chromium against the real stack: generate reports of a real scan in
every format from the form, watch them become ready, download the PDF and the JSON through
the portal session, and verify the stored file against its recorded sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from contracts.gen.jetscan import v1
from tests.conftest import Stack, scan_service, wait_status
from tests.handlers.test_lifecycle import nmap_request
from tests.portal.conftest import session_of, with_session

pytestmark = pytest.mark.slow
READY = 90_000  # ms: typst renders the PDF on a loaded machine


async def _download(page: Page) -> bytes:
    async with page.expect_download() as download:
        await page.click("#download")
    return Path(await (await download.value).path()).read_bytes()


async def _open_ready(page: Page, report_id: str) -> str:
    """Open the report's page, which refreshes itself while pending; its sha256 once ready."""
    await page.goto(f"/reports/{report_id}")
    await expect(page.locator("#report-status")).to_have_text("ready", timeout=READY)
    return (await page.locator("#sha256").text_content() or "").strip()


async def test_generate_download_and_verify_reports(
    operator_page: Page, stack: Stack, open_port: int, http: httpx.AsyncClient, screenshots: Path
) -> None:
    page = operator_page
    async with scan_service(stack) as scans:
        started = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED}, within=90)
    # A link from elsewhere (the scan page's report button) prefills the form.
    await page.goto(f"/reports?scan_id={started.id}")
    await expect(page.locator("#r-subject")).to_have_value(started.id)
    # No format: refused next to the formats; a scan that does not exist: next to the subject.
    for box in await page.locator("input[name=format]").all():
        await box.uncheck()
    await page.click("#generate button[type=submit]")
    await expect(page.locator("#format-error")).to_contain_text("choose one or more")
    await page.fill("#r-subject", "no-such-scan")
    await page.check("input[name=format][value=json]")
    await page.click("#generate button[type=submit]")
    await expect(page.locator("#subject-error")).to_contain_text("no-such-scan")
    # Every format at once.
    await page.fill("#r-subject", started.id)
    for box in await page.locator("input[name=format]").all():
        await box.check()
    await page.click("#generate button[type=submit]")
    await page.wait_for_url("**/reports?generated=*")
    rows = page.locator(f"#requested tbody tr[data-row]:has(a[href='/scans/{started.id}'])")
    await expect(rows).to_have_count(5)
    await expect(rows.locator("td:nth-child(2)")).to_have_text(
        ["PDF", "JSON", "SARIF", "DefectDojo", "CSV"]
    )
    links = await rows.locator("td:first-child a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    by_format = dict(zip(["pdf", "json", "sarif", "defectdojo", "csv"], links, strict=True))

    pdf_id = by_format["pdf"].rsplit("/", 1)[-1]
    sha = await _open_ready(page, pdf_id)
    pdf = await _download(page)
    assert pdf.startswith(b"%PDF-") and hashlib.sha256(pdf).hexdigest() == sha
    await page.click("#verify")
    await expect(page.locator("#verified .verify-ok")).to_contain_text("Matches")
    await expect(page.locator("#stored-sha256")).to_have_text(sha)
    await page.screenshot(path=screenshots / "report.png", full_page=True)

    json_id = by_format["json"].rsplit("/", 1)[-1]
    sha = await _open_ready(page, json_id)
    raw = await _download(page)
    assert hashlib.sha256(raw).hexdigest() == sha
    document = json.loads(raw)
    assert started.id in json.dumps(document)
    for fmt in ("sarif", "defectdojo", "csv"):
        await _open_ready(page, by_format[fmt].rsplit("/", 1)[-1])
    await page.goto("/reports")
    await page.screenshot(path=screenshots / "reports.png", full_page=True)

    # The download needs a session or a token: without either it is refused.
    file = f"/reports/{json_id}/report.json"
    assert (await http.get(file)).status_code == 401
    cookie, _ = await session_of(http, stack.admin_token)
    assert (await http.get(file, headers=with_session(cookie))).content == raw


async def test_reports_of_a_domain_and_a_schedule(
    operator_page: Page, stack: Stack, open_port: int
) -> None:
    page = operator_page
    async with scan_service(stack) as scans:
        started = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED}, within=90)
    for kind, subject in (("domain", "127.0.0.1/32"), ("target", "127.0.0.1")):
        await page.goto("/reports")
        await page.check(f"input[name=subject_kind][value={kind}]")
        await page.fill("#r-subject", subject)
        for box in await page.locator("input[name=format]").all():
            await box.uncheck()
        await page.check("input[name=format][value=csv]")
        await page.click("#generate button[type=submit]")
        await page.wait_for_url("**/reports/*")
        await expect(page.locator("#report-status")).to_have_text("ready", timeout=READY)
        await expect(page.locator(".kv")).to_contain_text(subject)
    # A schedule's report: the schedule made on its page, the report from its link.
    await page.goto("/schedules/new")
    await page.fill("#s-target", "127.0.0.1")
    await page.fill("#opt-nmap-ports", str(open_port))
    await page.uncheck("#opt-nmap-reverse_dns")
    await page.click("#schedule-form button.primary")
    await page.wait_for_url("**/schedules/*?saved=1")
    await page.click("#run-now")
    await page.wait_for_url("**/scans/*")
    schedule_scan = page.url.rsplit("/", 1)[-1]
    async with scan_service(stack) as scans:
        scan = await wait_status(scans, schedule_scan, {v1.ScanStatus.SUCCEEDED}, within=90)
    await page.goto(f"/reports?schedule_id={scan.schedule_id}")
    await expect(page.locator("input[name=subject_kind][value=schedule]")).to_be_checked()
    for box in await page.locator("input[name=format]").all():
        await box.uncheck()
    await page.check("input[name=format][value=sarif]")
    await page.click("#generate button[type=submit]")
    await page.wait_for_url("**/reports/*")
    await expect(page.locator("#report-status")).to_have_text("ready", timeout=READY)
    await expect(page.locator(".kv")).to_contain_text(scan.schedule_id)
