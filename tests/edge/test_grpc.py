"""The edge over a real gRPC socket, with every role running against real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import nats
import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from contracts.auth import Role
from contracts.gen.jetscan import v1
from tests.conftest import Stack
from workers import tokens

SCAN_SERVICE = "jetscan.v1.ScanService"


@pytest.fixture
async def channel(stack: Stack) -> AsyncIterator[Channel]:
    addr = stack.settings.grpc_addr
    ch = Channel(addr.host, addr.port)
    try:
        yield ch
    finally:
        ch.close()


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def make_token(stack: Stack, role: Role) -> str:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        token = await tokens.create(nc.jetstream(), role, f"test-{role.value}")
    finally:
        await nc.drain()
    # The edge learns tokens through a KV watch: wait until it knows this one.
    await until_token(stack, token, accepted=True)
    return token


async def until_token(stack: Stack, token: str, *, accepted: bool, within: float = 30) -> None:
    """Poll the edge until `token` is accepted (or refused as UNAUTHENTICATED)."""
    addr = stack.settings.grpc_addr
    channel = Channel(addr.host, addr.port)
    stub = v1.ScanServiceStub(channel, timeout=15)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        while True:
            # No such scan: NOT_FOUND once the token is known, UNAUTHENTICATED before.
            try:
                await stub.get_scan(v1.GetScanRequest(id="token-probe"), metadata=auth(token))
            except GRPCError as err:
                now_accepted = err.status != Status.UNAUTHENTICATED
            else:
                now_accepted = True
            if now_accepted == accepted:
                return
            assert loop.time() < deadline, f"token not {'accepted' if accepted else 'refused'}"
            await asyncio.sleep(0.05)
    finally:
        channel.close()


async def wait_serving(channel: Channel, service: str, timeout: float = 15.0) -> None:
    stub = HealthStub(channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        reply = await stub.Check(HealthCheckRequest(service=service))
        if reply.status == HealthCheckResponse.SERVING:
            return
        if loop.time() > deadline:
            pytest.fail(f"{service} not SERVING after {timeout}s")
        await asyncio.sleep(0.2)


async def test_health_serves_overall_and_per_service(channel: Channel) -> None:
    await wait_serving(channel, SCAN_SERVICE)
    stub = HealthStub(channel)
    for service in ("", SCAN_SERVICE, "jetscan.v1.ReportService", "jetscan.v1.ScheduleService"):
        reply = await stub.Check(HealthCheckRequest(service=service))
        assert reply.status == HealthCheckResponse.SERVING, service
    with pytest.raises(GRPCError) as err:
        await stub.Check(HealthCheckRequest(service="no.such.Service"))
    assert err.value.status == Status.NOT_FOUND


async def test_list_scans_needs_a_token(channel: Channel, stack: Stack) -> None:
    stub = v1.ScanServiceStub(channel)
    with pytest.raises(GRPCError) as err:
        await stub.list_scans(v1.ListScansRequest())
    assert err.value.status == Status.UNAUTHENTICATED
    for bad in ("Bearer jst_not_a_token", "Basic abc", "Bearer ", "jst_x"):
        with pytest.raises(GRPCError) as err:
            await stub.list_scans(v1.ListScansRequest(), metadata={"authorization": bad})
        assert err.value.status == Status.UNAUTHENTICATED, bad
    reply = await stub.list_scans(v1.ListScansRequest(), metadata=auth(stack.admin_token))
    assert isinstance(reply, v1.ListScansResponse)


async def test_roles_limit_what_a_token_may_do(channel: Channel, stack: Stack) -> None:
    viewer = await make_token(stack, Role.VIEWER)
    operator = await make_token(stack, Role.OPERATOR)
    stub = v1.ScanServiceStub(channel)
    await stub.list_scans(v1.ListScansRequest(), metadata=auth(viewer))
    with pytest.raises(GRPCError) as err:
        await stub.cancel_scan(v1.CancelScanRequest(id="x"), metadata=auth(viewer))
    assert err.value.status == Status.PERMISSION_DENIED
    assert "operator" in (err.value.message or "")
    reports = v1.ReportServiceStub(channel)
    with pytest.raises(GRPCError) as err:
        await reports.generate_report(v1.GenerateReportRequest(), metadata=auth(viewer))
    assert err.value.status == Status.PERMISSION_DENIED
    with pytest.raises(GRPCError) as err:
        await reports.generate_report(v1.GenerateReportRequest(), metadata=auth(operator))
    assert err.value.status == Status.INVALID_ARGUMENT
    assert "format" in (err.value.message or "")


async def test_revoked_token_stops_working(channel: Channel, stack: Stack) -> None:
    from contracts.auth import token_key

    token = await make_token(stack, Role.VIEWER)
    stub = v1.ScanServiceStub(channel)
    await stub.list_scans(v1.ListScansRequest(), metadata=auth(token))
    nc = await nats.connect(stack.settings.nats_url)
    try:
        kv = await nc.jetstream().key_value("tokens")
        await kv.delete(token_key(token))
    finally:
        await nc.drain()
    await until_token(stack, token, accepted=False)
    with pytest.raises(GRPCError) as err:
        await stub.list_scans(v1.ListScansRequest(), metadata=auth(token))
    assert err.value.status == Status.UNAUTHENTICATED


async def test_get_scan_errors(channel: Channel, stack: Stack) -> None:
    stub = v1.ScanServiceStub(channel)
    md = auth(stack.admin_token)
    with pytest.raises(GRPCError) as err:
        await stub.get_scan(v1.GetScanRequest(id="does-not-exist"), metadata=md)
    assert err.value.status == Status.NOT_FOUND
    for bad in ("", "a.b", "x" * 200, "a b"):
        with pytest.raises(GRPCError) as err:
            await stub.get_scan(v1.GetScanRequest(id=bad), metadata=md)
        assert err.value.status == Status.INVALID_ARGUMENT
        assert (err.value.message or "").startswith("id:")


async def _insert_scans(url: str, domain: str, n: int) -> list[str]:
    conn = await asyncpg.connect(url)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [f"{domain.replace('.', '-')}-{i}" for i in range(n)]
    try:
        for i, scan_id in enumerate(ids):
            await conn.execute(
                "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at)"
                " VALUES ($1, $2, $3, $4, $5, 600, $6)",
                scan_id,
                f"host{i}.{domain}",
                domain,
                "nmap" if i % 2 == 0 else "sslyze",
                "succeeded" if i % 3 == 0 else "queued",
                base + timedelta(minutes=i),
            )
    finally:
        await conn.close()
    return ids


async def test_list_scans_pages_newest_first_with_filters(channel: Channel, stack: Stack) -> None:
    ids = await _insert_scans(stack.settings.database_url, "paging.example", 7)
    stub = v1.ScanServiceStub(channel)
    md = auth(stack.admin_token)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await stub.list_scans(
            v1.ListScansRequest(domain="paging.example", page_size=3, page_token=token),
            metadata=md,
        )
        seen += [s.id for s in page.scans]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == list(reversed(ids))
    nmap = await stub.list_scans(
        v1.ListScansRequest(domain="paging.example", tool="nmap"), metadata=md
    )
    assert [s.id for s in nmap.scans] == [ids[6], ids[4], ids[2], ids[0]]
    done = await stub.list_scans(
        v1.ListScansRequest(domain="paging.example", status=v1.ScanStatus.SUCCEEDED), metadata=md
    )
    assert [s.id for s in done.scans] == [ids[6], ids[3], ids[0]]
    assert all(s.status == v1.ScanStatus.SUCCEEDED for s in done.scans)


async def test_list_scans_rejects_foreign_page_tokens(channel: Channel, stack: Stack) -> None:
    await _insert_scans(stack.settings.database_url, "tokens.example", 3)
    stub = v1.ScanServiceStub(channel)
    md = auth(stack.admin_token)
    page = await stub.list_scans(
        v1.ListScansRequest(domain="tokens.example", page_size=1), metadata=md
    )
    assert page.next_page_token
    for req in (
        v1.ListScansRequest(domain="other.example", page_token=page.next_page_token),
        v1.ListScansRequest(page_token="garbage!"),
        v1.ListScansRequest(page_size=-1),
    ):
        with pytest.raises(GRPCError) as err:
            await stub.list_scans(req, metadata=md)
        assert err.value.status == Status.INVALID_ARGUMENT
