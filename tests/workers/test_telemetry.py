"""What an operator sees of a real `jetscan up`: `/metrics` after scans, and one trace per scan
exported over OTLP/HTTP to a receiver this test runs on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from prometheus_client.parser import text_string_to_metric_families

from bench.otlp import Receiver, Span
from contracts import subjects, wire
from contracts.gen.jetscan import v1
from contracts.scans import CancelScan
from tests.conftest import run_jetscan, wait_status
from tests.handlers.test_lifecycle import nmap_request
from tests.workers.test_health import fetch
from tests.workers.test_up import Running, base_env, processes_under, start

pytestmark = pytest.mark.slow

Series = tuple[str, frozenset[tuple[str, str]]]
START = "/jetscan.v1.ScanService/StartScan"
OUTCOMES = ("applied", "ignored")


@dataclass
class Up:
    run: Running
    receiver: Receiver
    home: Path

    @property
    def metrics_addr(self) -> tuple[str, int]:
        host, port = self.run.env["JETSCAN_METRICS_ADDR"].rsplit(":", 1)
        return host, int(port)

    @contextlib.asynccontextmanager
    async def scans(self) -> AsyncIterator[v1.ScanServiceStub]:
        token = (self.home / "admin.token").read_text().strip()
        channel = Channel(*self.run.grpc)
        try:
            yield v1.ScanServiceStub(
                channel, metadata={"authorization": f"Bearer {token}"}, timeout=15
            )
        finally:
            channel.close()

    @contextlib.asynccontextmanager
    async def reports(self) -> AsyncIterator[v1.ReportServiceStub]:
        token = (self.home / "admin.token").read_text().strip()
        channel = Channel(*self.run.grpc)
        try:
            yield v1.ReportServiceStub(
                channel, metadata={"authorization": f"Bearer {token}"}, timeout=15
            )
        finally:
            channel.close()


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Up]:
    async with Receiver() as receiver:
        home = tmp_path_factory.mktemp("telemetry") / "home"
        env = base_env(home) | {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "JETSCAN_LOG_FORMAT": "json",
        }
        log = home.parent / "up.log"
        try:
            run = await start(env, stderr=log)
        except AssertionError as exc:
            text = log.read_text()
            first = max(text.find('"ERROR"'), 0)
            detail = text[first : first + 2500]
            raise AssertionError(f"jetscan up did not start:\n{detail}") from exc
        try:
            banner = await asyncio.wait_for(_rest_of_banner(run), 10)
            assert f"metrics http://{env['JETSCAN_METRICS_ADDR']}/metrics" in banner
            yield Up(run, receiver, home)
        finally:
            assert await run.stop() == 0


async def _rest_of_banner(run: Running) -> str:
    assert run.proc.stdout is not None
    return (await run.proc.stdout.readline()).decode()


async def scrape(addr: tuple[str, int]) -> dict[Series, float]:
    code, head, body = await fetch(addr[1], "/metrics")
    assert code == 200
    assert b"Content-Type: text/plain; version=0.0.4" in head
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def series(name: str, **labels: str) -> Series:
    return name, frozenset(labels.items())


async def until_moved(
    addr: tuple[str, int],
    before: dict[Series, float],
    wanted: list[Series],
    within: float = 20,
    events: Sequence[list[Series]] = (),
) -> dict[Series, float]:
    """Scrape until every series in `wanted` moved from `before`, and the sum of each group
    in `events` did, or `within` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within

    def moved(after: dict[Series, float], group: list[Series]) -> bool:
        return sum(after.get(s, 0) - before.get(s, 0) for s in group) > 0

    while True:
        after = await scrape(addr)
        done = all(moved(after, [s]) for s in wanted) and all(moved(after, g) for g in events)
        if done or loop.time() > deadline:
            return after
        await asyncio.sleep(0.2)


async def test_one_scan_moves_its_counters_by_exactly_one(up: Up, open_port: int) -> None:
    wanted = [
        series("jetscan_grpc_requests_total", method=START, code="OK"),
        series("jetscan_commands_total", type="start", outcome="queued"),
        series("jetscan_launches_total", tool="nmap", outcome="started"),
        series("jetscan_job_duration_seconds_count", tool="nmap", outcome="succeeded"),
        series("jetscan_messages_total", consumer="ingest-scan-commands", outcome="acked"),
        series("jetscan_messages_total", consumer="launcher-scan-commands", outcome="acked"),
        series("jetscan_messages_total", consumer="ingest-results", outcome="acked"),
        series("jetscan_events_total", status="succeeded", outcome="applied"),
        series("jetscan_queue_wait_seconds_count"),
    ]
    before = await scrape(up.metrics_addr)
    async with up.scans() as scans:
        scan = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, scan.id, {v1.ScanStatus.SUCCEEDED})
    # The scan's events: launching, running, succeeded; each handled once (launching is
    # ignored when the job's running event got there first, and may be handled after the
    # scan shows succeeded: waited for like the rest).
    handled = {
        status: [series("jetscan_events_total", status=status, outcome=o) for o in OUTCOMES]
        for status in ("launching", "running", "succeeded")
    }
    after = await until_moved(up.metrics_addr, before, wanted, events=list(handled.values()))
    assert {s: after.get(s, 0) - before.get(s, 0) for s in wanted} == {s: 1 for s in wanted}
    assert after[series("jetscan_running_jobs")] == 0
    for status, outcomes in handled.items():
        assert sum(after.get(s, 0) - before.get(s, 0) for s in outcomes) == 1, status
    assert after[series("jetscan_db_pool_max_connections")] > 0
    # The web address answers HTTP (counted) but never serves the metrics.
    web = int(up.run.env["JETSCAN_HTTP_ADDR"].rsplit(":", 1)[1])
    assert (await fetch(web, "/healthz"))[0] == 200
    assert (await fetch(web, "/metrics"))[0] == 404
    ok = series("jetscan_http_requests_total", method="GET", code="200")
    missing = series("jetscan_http_requests_total", method="GET", code="404")
    counted = await scrape(up.metrics_addr)
    assert counted[ok] - after.get(ok, 0) == 1
    assert counted[missing] - after.get(missing, 0) == 1
    assert series("jetscan_websocket_viewers") in after
    # Every metric the README lists is exposed.
    names = {name for name, _ in after}
    for name in (
        "jetscan_queue_depth",
        "jetscan_consumer_pending_messages",
        "jetscan_parked_messages",
        "jetscan_grpc_request_duration_seconds_bucket",
        "jetscan_db_pool_connections",
    ):
        assert name in names, name


async def test_label_values_stay_bounded_over_200_scans(up: Up) -> None:
    ids = [f"bounded-{n:03d}" for n in range(200)]
    before = await scrape(up.metrics_addr)
    # `jetscan up` runs NATS with a user per role: the test is the operator (admin).
    nc = await nats.connect(
        up.run.env.get("JETSCAN_NATS_URL") or _nats_url(up.home),
        user_credentials=str(up.home / "nats-auth" / "creds" / "admin.creds"),
    )
    try:
        js = nc.jetstream()
        async with up.scans() as scans:
            for scan_id in ids:
                # The edge sees each id (an unknown scan) and the pipeline handles a command,
                # an event and a parked message for each.
                with pytest.raises(GRPCError) as err:
                    await scans.cancel_scan(v1.CancelScanRequest(id=scan_id))
                assert err.value.status == Status.NOT_FOUND
                cmd = CancelScan(
                    scan_id=scan_id, requested_by="test", requested_at=datetime.now(UTC)
                )
                await js.publish(subjects.scan_cancel(scan_id), wire.encode(cmd))
    finally:
        await nc.drain()
    cancelled = series("jetscan_commands_total", type="cancel", outcome="cancelled")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while True:
        after = await scrape(up.metrics_addr)
        if after.get(cancelled, 0) - before.get(cancelled, 0) >= 200:
            break
        assert loop.time() < deadline, "the launcher did not handle 200 cancels in time"
        await asyncio.sleep(0.5)
    assert after[cancelled] - before.get(cancelled, 0) == 200
    # Each cancel's event names a scan never started: ingest parks it, and the PARKED stream's
    # gauge (read from JetStream every 5 s) shows them.
    parked = series("jetscan_messages_total", consumer="ingest-scan-events", outcome="parked")
    while True:
        after = await scrape(up.metrics_addr)
        if (
            after.get(parked, 0) - before.get(parked, 0) >= 200
            and after[series("jetscan_parked_messages")] >= 200
        ):
            break
        assert loop.time() < deadline, "the 200 events were not parked in time"
        await asyncio.sleep(0.5)
    assert after[parked] - before.get(parked, 0) == 200
    for consumer in ("launcher-scan-commands", "ingest-scan-events", "ingest-results"):
        assert series("jetscan_consumer_pending_messages", consumer=consumer) in after
    values = {v for _, labels in after for _, v in labels}
    assert not [v for v in values if "bounded-" in v]
    # New label combinations (a cancel outcome, a parked event, NOT_FOUND) but no series per
    # scan: 200 scans would add at least 200.
    assert len(after) - len(before) < 40, sorted(set(after) - set(before))


def _nats_url(home: Path) -> str:
    return (home / "nats.url").read_text().strip()


def _chain(spans: list[Span], last: Span) -> list[str]:
    by_id = {s.span_id: s for s in spans}
    names = [last.name]
    span = last
    while span.parent_id:
        parent = by_id.get(span.parent_id)
        assert parent is not None, f"{span.name}'s parent {span.parent_id} was not exported"
        names.append(parent.name)
        span = parent
    return names[::-1]


async def test_one_trace_from_the_rpc_to_the_ingest_of_the_result(up: Up, open_port: int) -> None:
    async with up.scans() as scans:
        scan = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, scan.id, {v1.ScanStatus.SUCCEEDED})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        ingested = [
            s
            for s in up.receiver.spans
            if s.name == "ingest result" and s.attributes.get("jetscan.scan_id") == scan.id
        ]
        if ingested:
            trace = [s for s in up.receiver.spans if s.trace_id == ingested[0].trace_id]
            names = [s.name for s in trace]
            # The last spans of the batch exporters arrive within their 1 s delay.
            if {"job", "result", START} <= set(names) and names.count("ingest event") >= 3:
                break
        assert loop.time() < deadline, "the scan's trace did not arrive"
        await asyncio.sleep(0.2)
    assert len(ingested) == 1
    assert _chain(trace, ingested[0]) == [
        START,
        "command",
        "launch",
        "job",
        "result",
        "ingest result",
    ]
    services = {s.name: s.service for s in trace}
    assert services["job"] == "jetscan-job"
    assert services["command"] == "jetscan"
    # The lifecycle events hang off the same trace: launching from the launch, running from
    # the job, succeeded from the launch's watch of the job (a redelivery is one more span).
    events = [s for s in trace if s.name == "ingest event"]
    assert len(events) >= 3
    parents = {s.span_id: s.name for s in trace}
    assert {parents[e.parent_id] for e in events} == {"job", "launch"}
    # The JSON log lines about this scan name it and its trace, and the role that wrote them.
    lines = [json.loads(line) for line in (up.home.parent / "up.log").read_text().splitlines()]
    about = [line for line in lines if line.get("scan_id") == scan.id]
    assert {line["role"] for line in about} >= {"launcher", "ingest"}
    assert {line.get("trace_id") for line in about} == {ingested[0].trace_id}


async def test_a_metrics_address_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        env = base_env(tmp_path / "home") | {"JETSCAN_METRICS_ADDR": addr}
        code, out, err = await run_jetscan(env, "up")
    finally:
        taken.close()
    assert code == 1
    assert out == ""
    assert err.splitlines()[-1] == (
        f"jetscan: JETSCAN_METRICS_ADDR: cannot listen on {addr}: Address already in use"
    )
    assert processes_under(tmp_path) == []


async def test_a_report_continues_the_trace_of_its_rpc(up: Up, open_port: int) -> None:
    async with up.scans() as scans:
        scan = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, scan.id, {v1.ScanStatus.SUCCEEDED})
    async with up.reports() as reports:
        report = await reports.generate_report(
            v1.GenerateReportRequest(
                scan_ids=v1.ScanIds(ids=[scan.id]), format=v1.ReportFormat.JSON
            )
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        renders = [s for s in up.receiver.spans if s.name == "render"]
        trace = [s for s in up.receiver.spans if renders and s.trace_id == renders[-1].trace_id]
        if renders and "/jetscan.v1.ReportService/GenerateReport" in {s.name for s in trace}:
            break
        assert loop.time() < deadline, f"report {report.id}'s trace did not arrive"
        await asyncio.sleep(0.2)
    assert _chain(trace, renders[-1]) == [
        "/jetscan.v1.ReportService/GenerateReport",
        "report",
        "render",
    ]
