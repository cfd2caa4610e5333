"""The findings list pages by keyset, at most 100 rows, every page's link keeping the filter
(the URL is the filter): 250 findings of one target, stored as ingest stores them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from html import unescape

import asyncpg
import httpx

from contracts.findings import Finding, Severity, fingerprint
from handlers import findings as finding_store
from tests.conftest import Stack
from tests.portal.conftest import session_of, with_session

_ROW = re.compile(r'<tr data-row>\s*<td>.*?href="/findings/([0-9a-f]+)"', re.DOTALL)
_NEXT = re.compile(r'<a rel="next" href="([^"]+)"')


async def test_pages_keep_the_filter_and_never_repeat_a_row(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    target = f"p{uuid.uuid4().hex[:10]}.paging.example"
    scan_id = uuid.uuid4().hex
    at = datetime.now(UTC)
    severities = list(Severity)
    found = [
        Finding(
            tool="nmap",
            severity=severities[i % 5],
            title=f"finding {i}",
            fingerprint=fingerprint("nmap", target, i),
        )
        for i in range(250)
    ]
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        scan_key = await conn.fetchval(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at)"
            # Its own domain: tests listing scans of paging.example count theirs only.
            " VALUES ($1, $2, $2, 'nmap', 'succeeded', 600, $3) RETURNING key",
            scan_id,
            target,
            at,
        )
        async with conn.transaction():
            await finding_store.record_seen(
                conn,
                scan_id=scan_id,
                scan_key=scan_key,
                tool="nmap",
                target=target,
                domain="paging.example",
                at=at,
                findings=found,
            )
    finally:
        await conn.close()
    cookie, _ = await session_of(http, stack.admin_token)
    headers = with_session(cookie)

    async def walk(url: str) -> list[list[str]]:
        pages = []
        while url:
            reply = await http.get(url, headers=headers)
            assert reply.status_code == 200, reply.text[:300]
            pages.append(_ROW.findall(reply.text))
            link = _NEXT.search(reply.text)
            url = unescape(link.group(1)) if link else ""
            if url:
                assert f"target={target}" in url and "page=" in url
        return pages

    every = await walk(f"/findings?target={target}")
    assert [len(p) for p in every] == [100, 100, 50]
    ids = [i for p in every for i in p]
    assert len(set(ids)) == 250
    high = await walk(f"/findings?target={target}&severity=high")
    assert [len(p) for p in high] == [50]
    assert set(high[0]) < set(ids)
    # A page token with another filter is refused, the reason shown above the list.
    first = await http.get(f"/findings?target={target}", headers=headers)
    token = unescape(_NEXT.search(first.text).group(1)).split("page=")[1]  # type: ignore[union-attr]
    other = await http.get(f"/findings?target={target}&state=open&page={token}", headers=headers)
    assert other.status_code == 400
    assert "page_token" in other.text and "different filter" in other.text
