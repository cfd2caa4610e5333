"""The portal's list pages with 10,000 scans and 100,000 findings, against a bare Starlette page.

An embedded stack (nats-server, PostgreSQL, streams, migrations, admin token) is loaded
through the store functions ingest uses: `store.insert_scans` for the scans (spread over
`--targets` targets in 50 domains, three tools, every status, a month of creation times), a
terminal status and times set in one UPDATE, and `findings.record_seen` for the findings (the
newest nmap scan of each target sees `--findings / --targets` of them), plus a console of
`--lines` lines for the scan whose page is measured. Then `jetscan run edge` and `jetscan run
queries` start as processes, and a client signs in through `/login` as a user does.

Each page is fetched `--rounds` times over one keep-alive connection, alternating with a bare
Starlette route (its own uvicorn process, as the edge serves HTTP) answering a page of the
same size: server time as a loopback client sees it, both sides paying the same transport.
Per page: p50/p95 in ms, the bare p50/p95, the rows of its table (at most 100) and the
requests it made to the queries service (counted by a subscriber on `query.>`; a page
must make a bounded number, whatever the data). Rows are those of the page's largest table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
from nats.aio.client import Client

from bench.processes import REPO, EmbeddedStack, free_port
from contracts.findings import Finding, Severity, fingerprint
from contracts.scans import StartScan
from handlers import findings, store

TARGET_P95_MS = 200.0
TOOLS = ("nmap", "sslyze", "dnsrecon")
STATUSES = ("succeeded", "succeeded", "succeeded", "failed", "cancelled", "timed_out")
NOW = datetime.now(UTC).replace(microsecond=0)
_TBODY = re.compile(rb"<tbody\b.*?</tbody>", re.DOTALL)
_ROW = re.compile(rb"<tr\b")
_CSRF = re.compile(rb'name="csrf"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf"')


class Loaded:
    def __init__(self) -> None:
        self.scan_id = ""  # the scan whose page is measured: an nmap scan with findings
        self.domain = ""


def _command(i: int, targets: int) -> StartScan:
    t = i % targets
    domain = f"d{t % 50}.example"
    return StartScan(
        scan_id=f"{i:08d}{uuid.uuid4().hex[:24]}",
        target=f"h{t}.{domain}",
        domain=domain,
        tool=TOOLS[(i // targets) % len(TOOLS)],
        config={"ports": "1-1024"},
        deadline_seconds=600,
        requested_by="bench",
        # Oldest first: scan i was created i minutes after the first, a week's worth.
        requested_at=NOW - timedelta(minutes=10_000 - i),
    )


def _findings(target: str, n: int) -> list[Finding]:
    severities = list(Severity)
    return [
        Finding(
            tool="nmap",
            severity=severities[(i * 7) % 5],
            title=f"CVE-2026-{i:05d} in the service on port {i % 1024 + 1}",
            fingerprint=fingerprint("nmap", target, "tcp", i % 1024 + 1, i),
            description="The banner names a version with a known vulnerability.",
            host=target,
            port=i % 1024 + 1,
            protocol="tcp",
            evidence={"banner": f"Server {i} ready", "cpe": "cpe:/a:example:server:1.0"},
            references=(f"https://example.org/CVE-2026-{i:05d}",),
        )
        for i in range(n)
    ]


async def load(url: str, n_scans: int, n_findings: int, targets: int, lines: int) -> Loaded:
    loaded = Loaded()
    cmds = [_command(i, targets) for i in range(n_scans)]
    conn = await asyncpg.connect(url)
    try:
        for start in range(0, n_scans, 2000):
            await store.insert_scans(conn, cmds[start : start + 2000])
        await conn.execute(
            "UPDATE scans SET status = ($1::text[])[1 + abs(hashtext(id)) % $2],"
            " started_at = created_at + interval '5 seconds',"
            " finished_at = created_at + interval '3 minutes', exit_code = 0,"
            " observed_at = created_at + interval '3 minutes'",
            list(STATUSES),
            len(STATUSES),
        )
        # The newest nmap scan of each target saw its findings.
        newest: dict[str, StartScan] = {}
        for c in cmds:
            if c.tool == "nmap":
                newest[c.target] = c
        per_target = n_findings // len(newest)
        for c in newest.values():
            async with conn.transaction():
                await findings.record_seen(
                    conn,
                    scan_id=c.scan_id,
                    scan_key=await conn.fetchval("SELECT key FROM scans WHERE id = $1", c.scan_id),
                    tool=c.tool,
                    target=c.target,
                    domain=c.domain,
                    at=c.requested_at + timedelta(minutes=3),
                    findings=_findings(c.target, per_target),
                )
            await conn.execute("UPDATE scans SET status = 'succeeded' WHERE id = $1", c.scan_id)
        # Some triage and some fixes, as a deployment's history leaves them (ingest's columns).
        await conn.execute(
            "UPDATE findings SET triage = CASE WHEN abs(hashtext(id)) % 100 = 0"
            " THEN 'false_positive' ELSE 'accepted_risk' END, triage_reason = 'bench',"
            " triaged_by = 'bench', triaged_at = last_seen, triage_until = CASE WHEN"
            " abs(hashtext(id)) % 3 = 0 THEN now() + interval '30 days' END"
            " WHERE abs(hashtext(id)) % 100 < 2"
        )
        await conn.execute(
            "UPDATE findings SET state = 'fixed', fixed_at = last_seen + interval '1 day'"
            " WHERE abs(hashtext(id)) % 10 = 5"
        )
        last = max(newest.values(), key=lambda c: c.requested_at)
        loaded.scan_id, loaded.domain = last.scan_id, last.domain
        await conn.copy_records_to_table(
            "scan_output",
            records=[
                (last.scan_id, seq, last.requested_at, "stdout", f"line {seq}: Discovered port")
                for seq in range(1, lines + 1)
            ],
            columns=("scan_id", "seq", "time", "stream", "text"),
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return loaded


def _quantiles(ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(ms, n=20, method="inclusive")
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(cuts[18], 2)}


async def sign_in(client: httpx.AsyncClient, token: str) -> None:
    """Through the login form as a browser does: its CSRF field (if any) and the token."""
    form = await client.get("/login")
    form.raise_for_status()
    data = {"token": token}
    if m := _CSRF.search(form.content):
        data["csrf"] = (m.group(1) or m.group(2)).decode()
    reply = await client.post("/login", data=data, headers={"Origin": str(client.base_url)})
    if reply.status_code not in (200, 302, 303):
        raise RuntimeError(f"sign-in refused: {reply.status_code} {reply.text[:200]}")
    if not client.cookies:
        raise RuntimeError("sign-in set no session cookie")


class QueryCounter:
    """Requests to the queries service, as a plain subscriber on `query.>` sees them."""

    def __init__(self) -> None:
        self.n = 0

    async def on_msg(self, _: Any) -> None:
        self.n += 1


async def measure(
    edge: httpx.AsyncClient,
    bare: httpx.AsyncClient,
    path: str,
    rounds: int,
    nc: Client,
    counter: QueryCounter,
) -> dict[str, Any]:
    first = await edge.get(path)
    if first.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {first.status_code}: {first.text[:300]}")
    size = len(first.content)
    rows = max((len(_ROW.findall(body)) for body in _TBODY.findall(first.content)), default=0)
    page_ms: list[float] = []
    bare_ms: list[float] = []
    queries: list[int] = []
    for _ in range(rounds):
        await nc.flush()
        before = counter.n
        t0 = time.perf_counter()
        r = await edge.get(path)
        page_ms.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        await nc.flush()
        queries.append(counter.n - before)
        t0 = time.perf_counter()
        b = await bare.get("/bare", params={"size": size})
        bare_ms.append((time.perf_counter() - t0) * 1000)
        b.raise_for_status()
    page, base = _quantiles(page_ms), _quantiles(bare_ms)
    return {
        "path": path,
        "bytes": size,
        "rows": rows,
        "queries_max": max(queries),
        **page,
        "bare_p50_ms": base["p50_ms"],
        "bare_p95_ms": base["p95_ms"],
        "meets_target": page["p95_ms"] <= TARGET_P95_MS and rows <= 100,
    }


def serve_bare(port: int) -> None:
    """The baseline: a Starlette route answering `size` bytes of HTML, under uvicorn."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request: Request) -> HTMLResponse:
        size = int(request.query_params.get("size", "0"))
        return HTMLResponse("<!doctype html>" + "x" * max(0, size - 15))

    app = Starlette(routes=[Route("/bare", page)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


async def _wait_http(url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as c:
        while True:
            try:
                if (await c.get(url)).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {within}s")
            await asyncio.sleep(0.2)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jetscan-bench-ui-") as tmp:
        stack = EmbeddedStack(Path(tmp))
        async with stack as settings:
            t0 = time.perf_counter()
            loaded = await load(
                settings.database_url, args.scans, args.findings, args.targets, args.lines
            )
            load_s = time.perf_counter() - t0
            bare_port = free_port()
            bare_proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.ui", "--serve-bare", str(bare_port), cwd=REPO
            )
            try:
                await stack.role("queries", log_level="WARNING")
                await stack.role("edge", log_level="WARNING")
                edge_url = f"http://{settings.http_addr}"
                await _wait_http(edge_url + "/healthz")
                await _wait_http(f"http://127.0.0.1:{bare_port}/bare")
                token = settings.admin_token_path.read_text().strip()
                nc = await nats.connect(settings.nats_url)
                counter = QueryCounter()
                await nc.subscribe("query.>", cb=counter.on_msg)
                pages = {
                    "scan_list": "/scans",
                    "scan_list_filtered": f"/scans?domain={loaded.domain}&tool=nmap"
                    "&status=succeeded",
                    "scan_page": f"/scans/{loaded.scan_id}",
                    "findings_list": "/findings",
                    "findings_filtered": f"/findings?domain={loaded.domain}&severity=high",
                }
                out: dict[str, Any] = {}
                async with (
                    httpx.AsyncClient(base_url=edge_url, timeout=30) as edge,
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{bare_port}") as bare,
                ):
                    await sign_in(edge, token)
                    for name, path in pages.items():
                        out[name] = await measure(edge, bare, path, args.rounds, nc, counter)
                await nc.drain()
            finally:
                bare_proc.terminate()
                await bare_proc.wait()
    return {
        "scans": args.scans,
        "findings": args.findings,
        "targets": args.targets,
        "rounds": args.rounds,
        "load_seconds": round(load_s, 1),
        "target_p95_ms": TARGET_P95_MS,
        "pages": out,
        "all_meet_target": all(p["meets_target"] for p in out.values()),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ui", description=__doc__)
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--serve-bare", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
