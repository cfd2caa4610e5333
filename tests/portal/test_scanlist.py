"""The scan list's keyset paging: 100 rows a page, newest first, and the next page keeps
every filter of the URL."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from contracts.scans import StartScan
from handlers import store
from tests.conftest import Stack
from tests.portal.conftest import session_of, with_session

ROWS = re.compile(r'<tr data-scan="([^"]+)"')
NEXT = re.compile(r'<a href="(/scans\?[^"]+)" rel="next">')


async def test_paging_keeps_the_filter(
    stack: Stack, http: httpx.AsyncClient, database_url: str
) -> None:
    # Seeded through ingest's own insert (as bench/ui.py loads), long ago and ended, so no
    # other test's list or the launcher sees them as work.
    start = datetime(2020, 1, 1, tzinfo=UTC)
    cmds = [
        StartScan(
            scan_id=f"paging{i:04d}",
            target="paging.test",
            domain="paging.test",
            tool="nmap",
            config={},
            deadline_seconds=60,
            requested_by="seed",
            requested_at=start + timedelta(minutes=i),
        )
        for i in range(105)
    ]
    conn = await asyncpg.connect(database_url)
    try:
        await store.insert_scans(conn, cmds)
        await conn.execute("UPDATE scans SET status = 'succeeded' WHERE domain = 'paging.test'")
    finally:
        await conn.close()
    cookie, _ = await session_of(http, stack.admin_token)
    params = {"domain": "paging.test", "tool": "nmap", "status": "succeeded", "since": "2019-12-31"}
    first = await http.get("/scans", params=params, headers=with_session(cookie))
    assert first.status_code == 200
    assert ROWS.findall(first.text) == [f"paging{i:04d}" for i in range(104, 4, -1)]
    link = NEXT.search(first.text)
    assert link is not None
    following = html.unescape(link.group(1))
    for name, value in params.items():
        assert f"{name}={value}" in following
    second = await http.get(following, headers=with_session(cookie))
    assert ROWS.findall(second.text) == [f"paging{i:04d}" for i in range(4, -1, -1)]
    assert NEXT.search(second.text) is None and "First page" in second.text
    # A page token is bound to its filter: reused with another, it is an error on the page.
    other = following.replace("tool=nmap", "tool=sslyze")
    refused = await http.get(other, headers=with_session(cookie))
    assert refused.status_code == 400 and "page_token" in refused.text
    # A bad filter is named next to its input, as ListScans names it.
    bad = await http.get("/scans?status=RUNNING&since=soon", headers=with_session(cookie))
    assert bad.status_code == 400 and "unknown status" in bad.text
