"""A generic client (grpcio's reflection client) discovers and calls jetscan from JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

from tests.conftest import ROOT, Stack


async def client(stack: Stack, *args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.edge.reflection_client",
        str(stack.settings.grpc_addr),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
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
    assert len(methods) == 6 + 3 + 5


@pytest.mark.parametrize("with_token", [True, False])
async def test_reflection_driven_list_scans(stack: Stack, with_token: bool) -> None:
    args = ["call", "jetscan.v1.ScanService/ListScans", '{"domain": "nowhere.test", "pageSize": 5}']
    result = await client(stack, *args, *([stack.admin_token] if with_token else []))
    if with_token:
        assert result == {"reply": {}}  # an empty list: proto3 JSON omits empty fields
    else:
        assert result["code"] == "UNAUTHENTICATED"
