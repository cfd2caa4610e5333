"""Health follows the roles: stopping one turns ScanService NOT_SERVING, restarting it back."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest
from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from tests.conftest import ROOT, Stack

SCAN_SERVICE = "jetscan.v1.ScanService"


@pytest.fixture
async def health(stack: Stack) -> AsyncIterator[HealthStub]:
    ch = Channel(stack.settings.grpc_addr.host, stack.settings.grpc_addr.port)
    try:
        yield HealthStub(ch)
    finally:
        ch.close()


async def wait_for(stub: HealthStub, service: str, want: int, within: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        reply = await stub.Check(HealthCheckRequest(service=service))
        if reply.status == want:
            return loop.time() - start
        if loop.time() - start > within:
            pytest.fail(f"{service} still {reply.status} after {within}s, wanted {want}")
        await asyncio.sleep(0.1)


async def test_stopping_and_restarting_a_role_flips_health(
    stack: Stack, health: HealthStub
) -> None:
    serving, not_serving = HealthCheckResponse.SERVING, HealthCheckResponse.NOT_SERVING
    await wait_for(health, SCAN_SERVICE, serving, 15)
    await stack.stop_role("launcher")
    try:
        await wait_for(health, SCAN_SERVICE, not_serving, 10)
        # ReportService does not need the launcher.
        reply = await health.Check(HealthCheckRequest(service="jetscan.v1.ReportService"))
        assert reply.status == serving

        # The same role run alone, as a cluster runs it: `jetscan run launcher`.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "JETSCAN_NATS_URL": stack.settings.nats_url,
            "JETSCAN_HOME": str(stack.settings.home),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.cli",
            "run",
            "launcher",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await wait_for(health, SCAN_SERVICE, serving, 15)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            await wait_for(health, SCAN_SERVICE, not_serving, 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        await stack.start_role("launcher")
    await wait_for(health, SCAN_SERVICE, serving, 10)


async def test_watch_streams_the_change(stack: Stack) -> None:
    ch = Channel(stack.settings.grpc_addr.host, stack.settings.grpc_addr.port)
    try:
        stub = HealthStub(ch)
        await wait_for(stub, SCAN_SERVICE, HealthCheckResponse.SERVING, 15)
        async with stub.Watch.open() as stream:
            await stream.send_message(HealthCheckRequest(service=SCAN_SERVICE), end=True)
            first = await stream.recv_message()
            assert first is not None and first.status == HealthCheckResponse.SERVING
            await stack.stop_role("ingest")
            try:
                changed = await asyncio.wait_for(stream.recv_message(), 10)
                assert changed is not None
                assert changed.status == HealthCheckResponse.NOT_SERVING
            finally:
                await stack.start_role("ingest")
            back = await asyncio.wait_for(stream.recv_message(), 10)
            assert back is not None and back.status == HealthCheckResponse.SERVING
            await stream.cancel()
    finally:
        ch.close()
