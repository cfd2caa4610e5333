"""Per-token rate limits: the bucket as a pure function of a clock, then on a real edge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Cardinality, Status

from contracts.auth import Role
from contracts.gen.jetscan import v1
from contracts.settings import Rate, Settings, SettingsError, load
from edge.ratelimit import RETRY_AFTER, RateLimits
from edge.server import serve
from tests.conftest import Stack, free_port
from workers import tokens
from workers.stack import wait_listening


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_one_call_per_refill() -> None:
    clock = Clock()
    limits = RateLimits({"StartScan": Rate(3, 60.0)}, clock=clock)
    assert [limits.take("alice", "StartScan") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.take("alice", "StartScan") == pytest.approx(20.0)
    clock.now += 5
    assert limits.take("alice", "StartScan") == pytest.approx(15.0)  # refused calls cost nothing
    clock.now += 15
    assert limits.take("alice", "StartScan") == 0.0
    assert limits.take("alice", "StartScan") == pytest.approx(20.0)
    # An idle hour refills the bucket to its burst, no further.
    clock.now += 3600
    assert [limits.take("alice", "StartScan") for _ in range(4)][-1] == pytest.approx(20.0)


def test_buckets_are_per_token_and_per_method_and_unlisted_methods_are_free() -> None:
    clock = Clock()
    limits = RateLimits(
        {"StartScan": Rate(1, 1.0), "GenerateReport": Rate(1, 3600.0), "ListScans": Rate(0, 1.0)},
        clock=clock,
    )
    assert limits.take("alice", "StartScan") == 0.0
    assert limits.take("alice", "StartScan") == pytest.approx(1.0)
    assert limits.take("bob", "StartScan") == 0.0
    assert limits.take("alice", "GenerateReport") == 0.0
    assert limits.take("alice", "GenerateReport") == pytest.approx(3600.0)
    # A limit of 0 is off, as is a method with no limit.
    assert all(limits.take("alice", "ListScans") == 0.0 for _ in range(100))
    assert all(limits.take("alice", "CancelScan") == 0.0 for _ in range(100))


def test_memory_is_bounded_by_forgetting_the_least_recent_bucket() -> None:
    clock = Clock()
    limits = RateLimits({"StartScan": Rate(1, 3600.0)}, clock=clock, max_buckets=2)
    for key in ("a", "b", "c"):
        assert limits.take(key, "StartScan") == 0.0
    # "a" was forgotten (a fresh bucket); "c" was not.
    assert limits.take("a", "StartScan") == 0.0
    assert limits.take("c", "StartScan") > 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("600/m", Rate(600, 60.0)), ("5/s", Rate(5, 1.0)), ("1/h", Rate(1, 3600.0)), ("off", None)],
)
def test_rates_parse(text: str, expected: Rate | None) -> None:
    got = load({"JETSCAN_START_RATE": text}).start_rate
    assert got == (expected or Rate(0, 1.0))
    if expected:
        assert str(got) == text


@pytest.mark.parametrize("text", ["600", "0/m", "-1/s", "5/d", "5 / m", "1.5/s", "on"])
def test_a_bad_rate_names_its_variable(text: str) -> None:
    with pytest.raises(SettingsError) as err:
        load({"JETSCAN_REPORT_RATE": text})
    assert err.value.variable == "JETSCAN_REPORT_RATE"
    assert "expected N/s, N/m, N/h or off" in str(err.value)


@pytest.fixture
async def strict_edge(stack: Stack) -> AsyncIterator[Settings]:
    """A second edge of the stack that allows 3 StartScan calls per token per hour."""
    settings = msgspec.structs.replace(
        stack.settings,
        grpc_addr=msgspec.structs.replace(stack.settings.grpc_addr, port=free_port()),
        http_addr=msgspec.structs.replace(stack.settings.http_addr, port=free_port()),
        start_rate=Rate(3, 3600.0),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        await wait_listening(settings.grpc_addr, settings.http_addr)
        yield settings
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def operator_token(stack: Stack, channel: Channel) -> str:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        token = await tokens.create(nc.jetstream(), Role.OPERATOR, "rate-limited")
    finally:
        await nc.drain()
    stub = v1.ScanServiceStub(channel, metadata=bearer(token))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:  # the edge learns tokens through a KV watch
        try:
            await stub.list_scans(v1.ListScansRequest())
            return token
        except GRPCError as exc:
            if exc.status is not Status.UNAUTHENTICATED or loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def start_scan(channel: Channel, token: str) -> tuple[Status, str, dict[str, str]]:
    """One StartScan that must fail: its status, message and trailing metadata."""
    request = v1.StartScanRequest(target="127.0.0.1", tool="no-such-tool")
    method = "/jetscan.v1.ScanService/StartScan"
    async with channel.request(
        method, Cardinality.UNARY_UNARY, v1.StartScanRequest, v1.Scan, metadata=bearer(token)
    ) as stream:
        await stream.send_message(request, end=True)
        with pytest.raises(GRPCError) as err:
            await stream.recv_message()
        trailers = {k: str(v) for k, v in (stream.trailing_metadata or {}).items()}
    return err.value.status, err.value.message or "", trailers


async def test_the_fourth_start_in_an_hour_is_resource_exhausted_with_when_to_retry(
    stack: Stack, strict_edge: Settings
) -> None:
    channel = Channel(strict_edge.grpc_addr.host, strict_edge.grpc_addr.port)
    try:
        alice = await operator_token(stack, channel)
        bob = await operator_token(stack, channel)
        # Refused requests count too: the limit guards the edge, not only the bus.
        for _ in range(3):
            status, _, trailers = await start_scan(channel, alice)
            assert status is Status.INVALID_ARGUMENT
            assert RETRY_AFTER not in trailers
        status, message, trailers = await start_scan(channel, alice)
        assert status is Status.RESOURCE_EXHAUSTED
        assert message.startswith(
            "rate limit: at most 3/h StartScan calls per token; retry after 1200."
        ), message
        assert trailers[RETRY_AFTER] == "1200"
        # Another token has its own bucket; other methods are not limited.
        status, _, _ = await start_scan(channel, bob)
        assert status is Status.INVALID_ARGUMENT
        stub = v1.ScanServiceStub(channel, metadata=bearer(alice))
        for _ in range(5):
            await stub.list_scans(v1.ListScansRequest())
    finally:
        channel.close()


def test_the_refusal_is_a_grpc_error_naming_the_limit() -> None:
    limits = RateLimits({"GenerateReport": Rate(60, 60.0)})
    err = limits.refusal("GenerateReport", 0.25)
    assert isinstance(err, GRPCError)
    assert err.status is Status.RESOURCE_EXHAUSTED
    assert err.message == (
        "rate limit: at most 60/m GenerateReport calls per token; retry after 0.2s"
    )
