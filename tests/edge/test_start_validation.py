"""Malformed or out-of-scope StartScan requests: the right status, the field, nothing published."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Cardinality, Status

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from tests.conftest import Stack

INVALID, DENIED = Status.INVALID_ARGUMENT, Status.PERMISSION_DENIED
GOOD: dict[str, Any] = {"target": "127.0.0.1", "tool": "nmap", "config": {"ports": "80"}}

CASES: list[tuple[dict[str, Any], Status, str]] = [
    ({"target": ""}, INVALID, "target"),
    ({"target": " 127.0.0.1"}, INVALID, "target"),
    ({"target": "127.0.0.1 "}, INVALID, "target"),
    ({"target": "-oX"}, INVALID, "target"),
    ({"target": "--script=http-title"}, INVALID, "target"),
    ({"target": "127.0.0.1;id"}, INVALID, "target"),
    ({"target": "$(id)"}, INVALID, "target"),
    ({"target": "`id`"}, INVALID, "target"),
    ({"target": "localhost|id"}, INVALID, "target"),
    ({"target": "localhost&"}, INVALID, "target"),
    ({"target": "local\nhost"}, INVALID, "target"),
    ({"target": "127.0.0.0/8"}, INVALID, "target"),
    ({"target": "::/64"}, INVALID, "target"),
    ({"target": "http://127.0.0.1/"}, INVALID, "target"),
    ({"target": "bad_host!"}, INVALID, "target"),
    ({"target": "a" * 300}, INVALID, "target"),
    ({"target": "example.com"}, DENIED, "target"),
    ({"target": "10.0.0.1"}, DENIED, "target"),
    ({"target": "192.168.0.0/24"}, DENIED, "target"),
    ({"target": "::1"}, DENIED, "target"),
    ({"target": "localhost.evil.example"}, DENIED, "target"),
    ({"tool": ""}, INVALID, "tool"),
    ({"tool": "nmapx"}, INVALID, "tool"),
    ({"tool": "../nmap"}, INVALID, "tool"),
    ({"config": {"bogus": 1}}, INVALID, "config.bogus"),
    ({"config": {"timing": 9}}, INVALID, "config.timing"),
    ({"config": {"timing": "fast"}}, INVALID, "config.timing"),
    ({"config": {"ports": "0"}}, INVALID, "config.ports"),
    ({"config": {"ports": "1-70000"}}, INVALID, "config.ports"),
    ({"config": {"ports": "80;id"}}, INVALID, "config.ports"),
    ({"config": {"scan_type": "udp"}}, INVALID, "config.scan_type"),
    ({"config": {"scripts": ["evil"]}}, INVALID, "config.scripts[0]"),
    ({"config": {"host_timeout_seconds": -1}}, INVALID, "config.host_timeout_seconds"),
    ({"config": {"service_detection": "yes"}}, INVALID, "config.service_detection"),
    ({"deadline_seconds": 10**9}, INVALID, "deadline_seconds"),
    ({"request_id": "has space"}, INVALID, "request_id"),
    ({"request_id": "x" * 200}, INVALID, "request_id"),
]


@pytest.fixture
async def stub(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    ch = Channel(stack.settings.grpc_addr.host, stack.settings.grpc_addr.port)
    try:
        yield v1.ScanServiceStub(ch, metadata={"authorization": f"Bearer {stack.admin_token}"})
    finally:
        ch.close()


async def commands_count(stack: Stack) -> int:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        return int((await nc.jetstream().stream_info("COMMANDS")).state.messages)
    finally:
        await nc.drain()


def request(overrides: dict[str, Any]) -> v1.StartScanRequest:
    fields = GOOD | overrides
    return v1.StartScanRequest(
        target=fields["target"],
        tool=fields["tool"],
        config=Struct.from_dict(fields["config"]),
        deadline_seconds=fields.get("deadline_seconds", 0),
        request_id=fields.get("request_id", ""),
    )


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("overrides", "status", "field"), CASES)
async def test_rejected_with_status_and_field_and_nothing_published(
    stub: v1.ScanServiceStub, stack: Stack, overrides: dict[str, Any], status: Status, field: str
) -> None:
    before = await commands_count(stack)
    with pytest.raises(GRPCError) as err:
        await stub.start_scan(request(overrides))
    assert err.value.status == status, err.value.message
    assert (err.value.message or "").startswith(f"{field}:"), err.value.message
    assert await commands_count(stack) == before


class _Raw:
    """Bytes sent as they are, whatever a StartScanRequest would look like."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data

    @classmethod
    def FromString(cls, data: bytes) -> _Raw:
        return cls(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xff\xff", "request: not a well-formed jetscan.v1.StartScanRequest"),
        (b"\x0a\x40127.0.0.1", "request: not a well-formed"),  # length past the end
        (b"\x0a\x02\xff\xfe\x12\x04nmap", "request: not a well-formed"),  # bad UTF-8
        (b"\x08\x96\x01\x12\x04nmap", "target: is empty"),  # target sent as a number
    ],
    ids=["garbage", "length-past-end", "bad-utf8", "wrong-wire-type"],
)
async def test_malformed_bytes_are_refused_and_nothing_published(
    stack: Stack, data: bytes, expected: str
) -> None:
    before = await commands_count(stack)
    ch = Channel(stack.settings.grpc_addr.host, stack.settings.grpc_addr.port)
    try:
        async with ch.request(
            "/jetscan.v1.ScanService/StartScan",
            Cardinality.UNARY_UNARY,
            _Raw,
            _Raw,
            metadata={"authorization": f"Bearer {stack.admin_token}"},
        ) as stream:
            await stream.send_message(_Raw(data), end=True)
            with pytest.raises(GRPCError) as err:
                await stream.recv_message()
    finally:
        ch.close()
    assert err.value.status == Status.INVALID_ARGUMENT, err.value.message
    assert (err.value.message or "").startswith(expected), err.value.message
    assert await commands_count(stack) == before
