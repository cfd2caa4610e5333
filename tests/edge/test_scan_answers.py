"""Answers a new user found misleading, through the real edge and roles over gRPC (and HTTP/2).

ListScans by an address and with unknown filters, a request id reused with other
parameters, a syn scan on an executor without raw sockets, and a compression the edge does
not read.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import AsyncIterator

import h2.config
import h2.connection
import h2.events
import msgspec
import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status

from contracts.gen.google.protobuf import Struct
from contracts.gen.jetscan import v1
from contracts.settings import Address, Settings
from edge.messages import ACCEPT_ENCODING
from scanners import TOOLS
from scanners.errors import Unsupported
from scanners.requests import Capabilities, validate_start
from scanners.scope import Scope
from scanners.targets import parse_target
from tests.conftest import Stack, edge_with, k8s_settings, scan_service
from tests.workers.test_usercli import insert_scan


@pytest.fixture
async def scans(stack: Stack) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


async def listed(scans: v1.ScanServiceStub, **filters: object) -> list[str]:
    page = await scans.list_scans(v1.ListScansRequest(page_size=1000, **filters))  # type: ignore[arg-type]
    return [s.id for s in page.scans]


async def test_list_scans_by_an_address_finds_the_scans_of_that_address(
    stack: Stack, scans: v1.ScanServiceStub
) -> None:
    # Stored as StartScan stores them: under the target's domain, for an address its network.
    kinds = TOOLS["nmap"].target_kinds
    v4 = parse_target("127.0.0.9", allowed_kinds=kinds).domain
    v6 = parse_target("::9", allowed_kinds=kinds).domain
    assert (v4, v6) == ("127.0.0.9/32", "::9/128")
    four = await insert_scan(stack, v4, "succeeded", 0)
    six = await insert_scan(stack, v6, "succeeded", 0)
    named = await insert_scan(stack, "answers.example", "succeeded", 0)
    for text in ("127.0.0.9", "127.0.0.9/32", " 127.0.0.9 "):
        assert await listed(scans, domain=text) == [four], text
    assert await listed(scans, domain="::9") == [six]
    assert await listed(scans, domain="0:0::9/128") == [six]
    assert await listed(scans, domain="Answers.Example.") == [named]
    assert await listed(scans, domain="127.0.0.10") == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (v1.ListScansRequest(tool="bogus"), "tool: unknown tool 'bogus'; expected one of"),
        (v1.ListScansRequest(tool="NMAP"), "tool: unknown tool 'NMAP'"),
        (v1.ListScansRequest(status=99), "status: unknown value"),  # type: ignore[arg-type]
    ],
)
async def test_unknown_list_filters_are_invalid_argument_naming_the_field(
    scans: v1.ScanServiceStub, request_: v1.ListScansRequest, field: str
) -> None:
    with pytest.raises(GRPCError) as err:
        await scans.list_scans(request_)
    assert err.value.status == Status.INVALID_ARGUMENT
    assert (err.value.message or "").startswith(field), err.value.message


def nmap(port: int, request_id: str, **config: object) -> v1.StartScanRequest:
    return v1.StartScanRequest(
        target="127.0.0.1",
        tool="nmap",
        config=Struct.from_dict({"ports": str(port), "reverse_dns": False, **config}),
        request_id=request_id,
    )


async def test_a_request_id_reused_with_other_parameters_is_already_exists(
    scans: v1.ScanServiceStub, open_port: int
) -> None:
    key = f"reuse-{uuid.uuid4()}"
    first = await scans.start_scan(nmap(open_port, key))
    # The same request again (a retry) is the same scan, spelled defaults and all.
    again = await scans.start_scan(nmap(open_port, key, timing=3))
    assert again.id == first.id
    for other in (
        nmap(open_port + 1 if open_port < 65535 else open_port - 1, key),
        nmap(open_port, key, timing=4),
        v1.StartScanRequest(target="127.0.0.2", tool="nmap", config=first.config, request_id=key),
    ):
        with pytest.raises(GRPCError) as err:
            await scans.start_scan(other)
        assert err.value.status == Status.ALREADY_EXISTS
        message = err.value.message or ""
        assert message.startswith(f"request_id: already used for scan {first.id}"), message
    deadline = nmap(open_port, key)
    deadline.deadline_seconds = 60
    with pytest.raises(GRPCError) as err:
        await scans.start_scan(deadline)
    assert err.value.status == Status.ALREADY_EXISTS


async def test_a_syn_scan_without_raw_sockets_is_refused_at_start(
    stack: Stack, open_port: int
) -> None:
    async with edge_with(k8s_settings(stack, raw_sockets=False)) as addr:
        channel = Channel(addr.host, addr.port)
        try:
            stub = v1.ScanServiceStub(
                channel, metadata={"authorization": f"Bearer {stack.admin_token}"}, timeout=15
            )
            with pytest.raises(GRPCError) as err:
                await stub.start_scan(nmap(open_port, "", scan_type="syn"))
            assert err.value.status == Status.FAILED_PRECONDITION
            assert (err.value.message or "").startswith("config.scan_type: syn scans need raw")
            # A connect scan is fine on the same edge: the refusal is about raw sockets only.
            accepted = await stub.start_scan(nmap(open_port, "", scan_type="connect"))
            assert accepted.status == v1.ScanStatus.QUEUED
        finally:
            channel.close()


def test_raw_sockets_follow_the_executor_and_only_syn_needs_them(settings: Settings) -> None:
    scope = Scope.parse("127.0.0.0/8")
    off = Capabilities(raw_sockets=False)
    syn = {"ports": "22", "scan_type": "syn"}
    with pytest.raises(Unsupported) as err:
        validate_start("nmap", "127.0.0.1", syn, 0, scope, capabilities=off)
    assert err.value.field == "config.scan_type"
    on = Capabilities(raw_sockets=True)
    assert validate_start("nmap", "127.0.0.1", syn, 0, scope, capabilities=on).config == syn
    connect = {"ports": "22", "scan_type": "connect"}
    assert validate_start("nmap", "127.0.0.1", connect, 0, scope, capabilities=off)
    kubernetes = msgspec.structs.replace(settings, executor="kubernetes", k8s_raw_sockets=False)
    assert Capabilities.of(kubernetes) == off
    assert Capabilities.of(msgspec.structs.replace(kubernetes, k8s_raw_sockets=True)) == on
    assert Capabilities.of(msgspec.structs.replace(kubernetes, executor="local")) == on


async def test_an_unknown_compression_is_unimplemented_with_grpc_accept_encoding(
    stack: Stack,
) -> None:
    # grpclib's and grpcio's clients compress only with gzip or deflate, so this speaks
    # HTTP/2 itself: a ListScans whose message says "compressed" with an unknown algorithm.
    addr = stack.settings.grpc_addr
    headers, trailers = await asyncio.to_thread(raw_grpc_call, addr, stack.admin_token)
    assert headers.get("grpc-accept-encoding") == ACCEPT_ENCODING
    answer = trailers or headers
    assert answer["grpc-status"] == str(Status.UNIMPLEMENTED.value)
    assert "gzip and deflate" in answer["grpc-message"].replace("%20", " ")


def raw_grpc_call(addr: Address, token: str) -> tuple[dict[str, str], dict[str, str]]:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    with socket.create_connection((addr.host, addr.port), timeout=15) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/jetscan.v1.ScanService/ListScans"),
                (":authority", f"{addr.host}:{addr.port}"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-encoding", "snappy"),
                ("authorization", f"Bearer {token}"),
            ],
        )
        body = b"\xff\x06sNaPpY not a snappy frame"
        conn.send_data(stream, struct.pack(">?I", True, len(body)) + body, end_stream=True)
        sock.sendall(conn.data_to_send())
        blocks: list[dict[str, str]] = []
        while True:
            data = sock.recv(65536)
            assert data, "the edge closed the connection without answering"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    blocks.append({k.decode(): v.decode() for k, v in event.headers})
                if isinstance(event, h2.events.StreamEnded):
                    return blocks[0], blocks[1] if len(blocks) > 1 else {}
            sock.sendall(conn.data_to_send())
