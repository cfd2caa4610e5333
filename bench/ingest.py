"""Ingesting a large result with change tracking, against a raw asyncpg COPY of the same rows.

One embedded PostgreSQL (pgserver, as `jetscan up` runs it), migrated as jetscan migrates it:

- copy: `copy_records_to_table` of the result's findings as finding rows (id, tool, target,
  domain, fingerprint, severity, JSON body, times) into a table with the columns and primary
  key of `findings`: the floor of what storing them costs.
- first: `store.store_result` of a result of N findings for one target, in parts as a job
  sends a large result (`--part` findings each), then the scan's success event, which applies
  its fixes: everything ingest does with a result.
- replay: the same result again: must add 0 rows.
- second: the next scan of the same target with `--changed` of its findings replaced by new
  ones (so as many new and as many fixed), as a complete scan covering them all.

`ratio_*` is the phase's findings/s over copy's rows/s; the issue asks >= 0.5. Each ratio is
against the copy measured just before it, so drift during the run affects both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec

from contracts.coverage import Coverage, PortRange
from contracts.findings import Finding, Severity, fingerprint
from contracts.nmap import NmapRun
from contracts.results import ScanResult
from contracts.scans import ScanEvent, ScanStatus, StartScan
from handlers import database, findings, store
from workers.embedded import Postgres

TARGET = "127.0.0.1"
TARGET_RATIO = 0.5


def make_findings(n: int, salt: str = "") -> list[Finding]:
    """`n` vulners-like findings on one host, spread over every TCP port."""
    out = []
    for i in range(n):
        port = i % 65535 + 1
        vuln = f"CVE-2026-{i}{salt}"
        out.append(
            Finding(
                tool="nmap",
                severity=list(Severity)[i % 5],
                title=vuln,
                fingerprint=fingerprint("nmap", TARGET, "tcp", port, vuln),
                description=f"vulners lists {vuln} (CVSS 5) for cpe:/a:example:server:1.{i % 9}"
                f" on {port}/tcp.",
                host=TARGET,
                port=port,
                protocol="tcp",
                evidence={"id": vuln, "type": "cve", "cvss": 5.0, "is_exploit": False},
                references=(f"https://vulners.com/cve/{vuln}",),
            )
        )
    return out


def result(scan_id: str, found: list[Finding], at: datetime, part: int, parts: int, size: int):  # type: ignore[no-untyped-def]
    last = part == parts
    return ScanResult(
        scan_id=scan_id,
        tool="nmap",
        target=TARGET,
        finished_at=at,
        exit_code=0,
        partial=False,
        findings=tuple(found[(part - 1) * size : part * size]),
        data=NmapRun(),
        part=part,
        parts=parts,
        coverage=(
            Coverage(hosts=(TARGET,), ports=(PortRange("tcp", 1, 65535),), checks=("vulners",))
            if last
            else None
        ),
    )


async def start(conn: asyncpg.Connection, at: datetime) -> str:
    scan_id = uuid.uuid4().hex
    cmd = StartScan(
        scan_id=scan_id,
        target=TARGET,
        domain=f"{TARGET}/32",
        tool="nmap",
        config={},
        deadline_seconds=3600,
        requested_by="bench",
        requested_at=at,
    )
    await store.insert_scans(conn, [cmd])
    return scan_id


async def ingest(
    conn: asyncpg.Connection, scan_id: str, found: list[Finding], at: datetime, size: int
) -> float:
    parts = max(1, -(-len(found) // size))
    began = time.perf_counter()
    for part in range(1, parts + 1):
        await store.store_result(conn, result(scan_id, found, at, part, parts, size))
    event = ScanEvent(scan_id=scan_id, status=ScanStatus.SUCCEEDED, at=at, exit_code=0)
    await store.apply_event(conn, event)
    return time.perf_counter() - began


async def copy(conn: asyncpg.Connection, found: list[Finding], at: datetime) -> float:
    table = f"copy_{uuid.uuid4().hex[:8]}"
    await conn.execute(
        f"CREATE TABLE {table} (id text PRIMARY KEY, tool text NOT NULL, target text NOT NULL,"
        " domain text NOT NULL, fingerprint text NOT NULL, severity smallint NOT NULL,"
        " body jsonb NOT NULL, first_seen timestamptz NOT NULL, last_seen timestamptz NOT NULL,"
        " last_scan_id text NOT NULL, decided_at timestamptz NOT NULL)"
    )
    encoder = msgspec.json.Encoder()
    began = time.perf_counter()
    rows = [
        (
            findings.finding_id("nmap", TARGET, f.fingerprint),
            "nmap",
            TARGET,
            TARGET,
            f.fingerprint,
            f.severity.rank,
            encoder.encode(f).decode(),
            at,
            at,
            "copy",
            at,
        )
        for f in found
    ]
    await conn.copy_records_to_table(table, records=rows)
    elapsed = time.perf_counter() - began
    await conn.execute(f"DROP TABLE {table}")
    return elapsed


async def counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {
        t: int(await conn.fetchval(f"SELECT count(*) FROM {t}"))  # noqa: S608
        for t in ("findings", "scan_findings")
    }


async def run(n: int, changed: float, size: int, home: Path) -> dict[str, object]:
    pg = Postgres(home / "postgres")
    url = await pg.start()
    conn = await asyncpg.connect(url)
    try:
        await database.migrate(conn)
        t0 = datetime.now(UTC)
        found = make_findings(n)
        out: dict[str, object] = {"findings": n, "part_size": size}

        copy_s = await copy(conn, found, t0)
        first_id = await start(conn, t0)
        first_s = await ingest(conn, first_id, found, t0 + timedelta(seconds=1), size)
        after_first = await counts(conn)

        replay_s = await ingest(conn, first_id, found, t0 + timedelta(seconds=1), size)
        after_replay = await counts(conn)

        k = int(n * changed)
        second = found[k:] + make_findings(k, salt="-b")
        copy2_s = await copy(conn, second, t0)
        second_id = await start(conn, t0 + timedelta(minutes=1))
        second_s = await ingest(conn, second_id, second, t0 + timedelta(minutes=1), size)
        view = await store.get_scan(conn, second_id)
        assert view is not None
        c = view.change_counts

        out.update(
            copy_rows_per_s=round(n / copy_s),
            first_rows_per_s=round(n / first_s),
            ratio_first=round(copy_s / first_s, 3),
            replay_rows_per_s=round(n / replay_s),
            replay_added_rows={t: after_replay[t] - after_first[t] for t in after_first},
            copy2_rows_per_s=round(len(second) / copy2_s),
            second_rows_per_s=round(len(second) / second_s),
            ratio_second=round(copy2_s / second_s, 3),
            second_changes={
                "new": c.new,
                "unchanged": c.unchanged,
                "reopened": c.reopened,
                "fixed": c.fixed,
            },
            target_ratio=TARGET_RATIO,
        )
        ok = (
            out["ratio_first"] >= TARGET_RATIO  # type: ignore[operator]
            and out["ratio_second"] >= TARGET_RATIO  # type: ignore[operator]
            and not any(out["replay_added_rows"].values())  # type: ignore[attr-defined]
            and (c.new, c.unchanged, c.fixed) == (k, n - k, k)
        )
        out["ok"] = ok
        return out
    finally:
        await conn.close()
        await pg.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__)
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--part", type=int, default=10_000, help="findings per result part")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        Path(tmp).chmod(0o755)
        out = asyncio.run(run(args.findings, args.changed, args.part, Path(tmp)))
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
