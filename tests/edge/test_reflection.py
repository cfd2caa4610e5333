"""A generic client (grpcio's reflection client) discovers and calls jetscan from JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import pytest

from tests.conftest import ROOT, Stack


async def client(stack: Stack, *args: str, stdin: bytes | None = None) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.edge.reflection_client",
        str(stack.settings.grpc_addr),
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_reflection_lists_every_service(stack: Stack) -> None:
    services = (await client(stack, "list"))["services"]
    for name in (
        "jetscan.v1.ScanService",
        "jetscan.v1.ReportService",
        "jetscan.v1.ScheduleService",
        "grpc.health.v1.Health",
    ):
        assert name in services


async def test_every_jetscan_method_resolves_through_reflection(stack: Stack) -> None:
    methods = (await client(stack, "describe"))["methods"]
    assert "jetscan.v1.ScanService/StartScan:jetscan.v1.StartScanRequest" in methods
    assert "jetscan.v1.ScanService/WatchScan:jetscan.v1.WatchScanRequest" in methods
    assert "jetscan.v1.ScheduleService/UpdateSchedule:jetscan.v1.UpdateScheduleRequest" in methods
    assert len(methods) == 8 + 3 + 10


@pytest.mark.parametrize("with_token", [True, False])
async def test_reflection_driven_list_scans(stack: Stack, with_token: bool) -> None:
    args = ["call", "jetscan.v1.ScanService/ListScans", '{"domain": "nowhere.test", "pageSize": 5}']
    result = await client(stack, *args, *([stack.admin_token] if with_token else []))
    if with_token:
        assert result == {"reply": {}}  # an empty list: proto3 JSON omits empty fields
    else:
        assert result["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
async def test_a_client_compressing_its_requests_is_understood(
    stack: Stack, algorithm: str
) -> None:
    start = "jetscan.v1.ScanService/StartScan"
    request = {
        "target": "127.0.0.1",
        "tool": "nmap",
        "config": {"ports": "1"},
        "requestId": f"compressed-{algorithm}-{uuid.uuid4().hex}",
    }
    accepted = await client(
        stack, "--compression", algorithm, "call", start, json.dumps(request), stack.admin_token
    )
    assert accepted["reply"]["status"] == "SCAN_STATUS_QUEUED", accepted
    # Validation still names the field when the request came compressed.
    refused = await client(
        stack,
        "--compression",
        algorithm,
        "call",
        start,
        json.dumps({"target": "-oX /tmp/x", "tool": "nmap"}),
        stack.admin_token,
    )
    assert refused["code"] == "INVALID_ARGUMENT"
    assert refused["details"].startswith("target:")


@pytest.mark.parametrize("algorithm", [None, "gzip"])
async def test_a_request_over_4_mib_is_refused_whole(stack: Stack, algorithm: str | None) -> None:
    # Zeros compress to almost nothing: the bound holds after inflating too.
    request = {"target": "127.0.0.1", "tool": "nmap", "config": {"ports": "1" + "0" * (5 << 20)}}
    args = ["--compression", algorithm] if algorithm else []
    result = await client(
        stack,
        *args,
        "call",
        "jetscan.v1.ScanService/StartScan",
        "-",
        stack.admin_token,
        stdin=json.dumps(request).encode(),
    )
    assert result["code"] == "RESOURCE_EXHAUSTED", result
