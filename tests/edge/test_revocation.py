"""Token lifetimes: list, revoke and expiry, reaching open consoles and sessions in a second."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import nats
import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status

from contracts.auth import Role
from contracts.gen.jetscan import v1
from edge.auth import TokenCache
from tests.conftest import Stack, run_jetscan, scan_service, wait_status
from tests.edge.test_live import watch
from tests.handlers.test_lifecycle import slow_nmap
from workers import tokens

pytestmark = pytest.mark.slow
WITHIN = 1.0  # the bound for revocation to reach an open console


def _env(stack: Stack) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JETSCAN_HOME": str(stack.settings.home),
        "JETSCAN_NATS_URL": stack.settings.nats_url,
    }


async def _list_scans(stack: Stack, token: str) -> None:
    addr = stack.settings.grpc_addr
    channel = Channel(addr.host, addr.port)
    try:
        stub = v1.ScanServiceStub(channel, metadata={"authorization": f"Bearer {token}"})
        await stub.list_scans(v1.ListScansRequest(), timeout=10)
    finally:
        channel.close()


async def _refused_within(stack: Stack, token: str, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            await _list_scans(stack, token)
        except GRPCError as exc:
            status = exc.status
            break
        assert loop.time() < deadline, "the token still works"
        await asyncio.sleep(0.05)
    assert status == Status.UNAUTHENTICATED


async def test_list_shows_use_and_expiry_and_revoke_refuses_at_once(stack: Stack) -> None:
    env = _env(stack)
    code, out, err = await run_jetscan(
        env, "token", "create", "--role", "viewer", "--name", "ci-list", "--expires", "30d"
    )
    assert code == 0, err
    token = out.strip()
    code, out, _ = await run_jetscan(env, "token", "list")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["ID", "NAME", "ROLE", "CREATED", "LAST", "USED", "EXPIRES"]
    row = next(line for line in lines if " ci-list " in line)
    assert " viewer " in row and "never" in row  # not used yet; expires in 30 days
    await _list_scans(stack, token)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:  # the edge stamps the use asynchronously
        _, out, _ = await run_jetscan(env, "token", "list")
        row = next(line for line in out.splitlines() if " ci-list " in line)
        if row.count("never") == 0:
            break
        assert loop.time() < deadline, row
        await asyncio.sleep(0.2)
    token_id = row.split()[0]
    code, out, _ = await run_jetscan(env, "token", "revoke", token_id)
    assert (code, out.split()[:3]) == (0, ["revoked", token_id, "ci-list"])
    await _refused_within(stack, token, WITHIN)
    code, _, err = await run_jetscan(env, "token", "revoke", token_id)
    assert code == 1 and "no token has id or name" in err
    code, _, err = await run_jetscan(env, "token", "create", "--role", "viewer", "--expires", "x")
    assert code == 1 and err.startswith("jetscan: --expires: bad duration")


async def _viewer(stack: Stack, name: str, expires_in: timedelta | None = None) -> str:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        return await tokens.create(nc.jetstream(), Role.VIEWER, name, expires_in)
    finally:
        await nc.drain()


async def _revoke(stack: Stack, name: str) -> None:
    nc = await nats.connect(stack.settings.nats_url)
    try:
        await tokens.revoke(nc.jetstream(), name)
    finally:
        await nc.drain()


async def test_revoking_closes_an_open_console_within_a_second(stack: Stack) -> None:
    token = await _viewer(stack, "ws-revoke")
    async with scan_service(stack) as scans:
        started = await scans.start_scan(slow_nmap())
        await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
        url = f"ws://{stack.settings.http_addr}/ws/scans/{started.id}"
        viewer = asyncio.create_task(watch(url, token))
        try:
            await asyncio.sleep(0.5)  # the console is open and streaming
            assert not viewer.done()
            await _revoke(stack, "ws-revoke")
            _, code = await asyncio.wait_for(viewer, WITHIN)
            assert code == 4401
        finally:
            viewer.cancel()
            await scans.cancel_scan(v1.CancelScanRequest(id=started.id))


async def test_an_expiring_token_closes_its_console_and_is_refused(stack: Stack) -> None:
    token = await _viewer(stack, "ws-expiry", timedelta(seconds=3))
    async with scan_service(stack) as scans:
        started = await scans.start_scan(slow_nmap())
        try:
            await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
            url = f"ws://{stack.settings.http_addr}/ws/scans/{started.id}"
            _, code = await asyncio.wait_for(watch(url, token), 3 + WITHIN)
            assert code == 4401
            with pytest.raises(GRPCError) as refused:
                await _list_scans(stack, token)
            assert refused.value.status == Status.UNAUTHENTICATED
        finally:
            await scans.cancel_scan(v1.CancelScanRequest(id=started.id))


async def test_a_session_store_learns_of_a_revocation_within_a_second(stack: Stack) -> None:
    """What a UI session store does: follow the bucket and wait on its session's token."""
    token = await _viewer(stack, "session")
    nc = await nats.connect(stack.settings.nats_url)
    sessions = TokenCache()
    try:
        await sessions.start(nc.jetstream())
        assert sessions.lookup(token) is not None
        ended = asyncio.create_task(sessions.invalidated(token))
        await asyncio.sleep(0.2)
        assert not ended.done()
        await _revoke(stack, "session")
        await asyncio.wait_for(ended, WITHIN)
        assert sessions.lookup(token) is None
    finally:
        await sessions.stop()
        await nc.drain()


async def test_revoking_ends_an_open_watch_scan_stream_within_a_second(stack: Stack) -> None:
    token = await _viewer(stack, "grpc-watch")
    async with scan_service(stack) as scans:
        started = await scans.start_scan(slow_nmap())
        try:
            await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
            addr = stack.settings.grpc_addr
            channel = Channel(addr.host, addr.port)
            viewer = v1.ScanServiceStub(channel, metadata={"authorization": f"Bearer {token}"})

            async def watch() -> Status | None:
                try:
                    async for _ in viewer.watch_scan(v1.WatchScanRequest(id=started.id)):
                        pass
                except GRPCError as exc:
                    return exc.status
                return None

            watching = asyncio.create_task(watch())
            try:
                await asyncio.sleep(0.5)
                assert not watching.done()
                await _revoke(stack, "grpc-watch")
                assert await asyncio.wait_for(watching, WITHIN) == Status.UNAUTHENTICATED
            finally:
                watching.cancel()
                channel.close()
        finally:
            await scans.cancel_scan(v1.CancelScanRequest(id=started.id))
