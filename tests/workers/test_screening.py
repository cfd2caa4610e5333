"""DNS tricks: a name in scope that leads somewhere the deployment never goes is refused."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.client import Client

from contracts.jobs import RESOLVERS, job_environ
from contracts.scans import StartScan
from scanners.dns.names import addresses_outside
from scanners.scope import Scope, refused_address
from tests.conftest import finish_job, start_job
from tests.scanners.dns.zone import ZoneServer
from tests.workers import messages
from workers import jobresult

SCOPE = "localhost,127.0.0.1/32"


@pytest.mark.parametrize(
    ("address", "scope", "why"),
    [
        ("169.254.169.254", "example.com", "the cloud metadata service"),
        ("fd00:ec2::254", "example.com", "the cloud metadata service"),
        ("100.100.100.200", "example.com", "the cloud metadata service"),
        ("169.254.10.1", "example.com", "link-local"),
        ("fe80::1", "example.com", "link-local"),
        ("127.0.0.2", "example.com,127.0.0.1/32", "loopback"),
        ("::1", "example.com", "loopback"),
        ("::ffff:127.0.0.1", "example.com", "loopback"),  # IPv4-mapped
        ("0.0.0.0", "example.com", "this network"),  # noqa: S104 - an address to judge
        ("::", "example.com", "unspecified"),
        ("10.1.2.3", "example.com", "private"),
        ("172.31.0.1", "example.com", "private"),
        ("192.168.1.1", "example.com", "private"),
        ("fd12::1", "example.com", "private (unique local)"),
        ("100.64.0.1", "example.com", "shared address space"),
        ("224.0.0.1", "example.com", "multicast"),
        ("ff02::1", "example.com", "multicast"),
        ("250.0.0.1", "example.com", "reserved"),
        # Named by the scope: allowed.
        ("127.0.0.1", "example.com,127.0.0.1/32", ""),
        ("::1", "example.com,127.0.0.1/32", ""),  # the same host as 127.0.0.1
        ("10.1.2.3", "example.com,10.0.0.0/8", ""),
        ("169.254.169.254", "example.com,169.254.169.254", ""),
        # Public addresses follow the name's scope.
        ("93.184.216.34", "example.com", ""),
        ("2606:2800:220:1::1", "example.com", ""),
    ],
)
def test_addresses_never_reached_through_a_name(address: str, scope: str, why: str) -> None:
    got = refused_address(address, Scope.parse(scope))
    assert (why in got and address in got) if why else got == ""


@pytest.fixture(scope="module")
def zone() -> Iterator[ZoneServer]:
    with ZoneServer() as server:
        yield server


class Listener:
    """A TCP server on 127.0.0.2 (outside the scope) that counts who connects."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def __aenter__(self) -> Listener:
        async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.2", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def outside() -> AsyncIterator[Listener]:
    async with Listener() as listener:
        yield listener


def _env(
    nats_url: str, tool: str, target: str, config: dict[str, Any], zone: ZoneServer
) -> tuple[str, dict[str, str]]:
    scan_id = uuid.uuid4().hex
    cmd = StartScan(
        scan_id=scan_id,
        target=target,
        domain="localhost",
        tool=tool,
        config=config,
        deadline_seconds=120,
        requested_by="test",
        requested_at=datetime.now(UTC),
    )
    # Programs that do not exist: a job that wrongly went on would say it could not start them.
    missing = {
        "zap.sh": "/nonexistent/zap.sh",
        "subfinder": "/nonexistent/sf",
        "dnsx": "/nonexistent/dnsx",
    }
    environ = job_environ(cmd, nats_url, scope=SCOPE, programs=missing)
    environ |= {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), RESOLVERS: zone.address}
    return scan_id, environ


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tool", "target", "config"),
    [
        ("nmap", "web.localhost", {"ports": "{port}", "reverse_dns": False}),
        ("sslyze", "web.localhost:{port}", {}),
        ("zap", "http://web.localhost:{port}/", {"spider_minutes": 1}),
        ("dns", "web.localhost", {"resolvers": ["{zone}"]}),
    ],
)
async def test_a_name_in_scope_leading_outside_it_is_refused_before_any_packet(
    applied: str,
    nc: Client,
    zone: ZoneServer,
    outside: Listener,
    tool: str,
    target: str,
    config: dict[str, Any],
) -> None:
    # web.localhost is in the scope by name; the test's DNS says 127.0.0.2, which is not.
    fill = {"port": str(outside.port), "zone": zone.address}
    target = target.format(**fill)
    config = {k: _fill(v, fill) for k, v in config.items()}
    scan_id, env = _env(applied, tool, target, config, zone)
    code, stderr = await finish_job(await start_job(env))
    assert code == jobresult.EXIT_SCANNER_FAILED, stderr
    [result] = await messages.results(nc.jetstream(), tool, scan_id)
    assert "web.localhost resolves to 127.0.0.2 is loopback, which the scope does not name" in (
        result.error
    )
    assert "could not start" not in result.error
    assert outside.connections == 0
    assert "web.localhost" in zone.zone.asked()


def _fill(value: Any, fill: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**fill)
    if isinstance(value, list):
        return [_fill(v, fill) for v in value]
    return value


@pytest.mark.slow
async def test_a_name_leading_inside_the_scope_runs(
    applied: str, nc: Client, zone: ZoneServer, open_port: int
) -> None:
    # localhost: 127.0.0.1 and ::1 (the same host), both named by the scope.
    config = {"ports": str(open_port), "reverse_dns": False}
    scan_id, env = _env(applied, "nmap", "localhost", config, zone)
    code, stderr = await finish_job(await start_job(env))
    assert code == jobresult.EXIT_OK, stderr
    [result] = await messages.results(nc.jetstream(), "nmap", scan_id)
    assert result.error == ""


@pytest.mark.parametrize(
    ("scope", "flagged"),
    [
        # A scope of domains only: the addresses no scan follows a name to.
        ("example.com", ("10.0.0.5", "169.254.169.254", "127.0.0.2")),
        # Networks named: everything outside them.
        ("example.com,10.0.0.0/8", ("93.184.216.34", "169.254.169.254", "127.0.0.2")),
    ],
)
def test_dns_recon_flags_derived_names_leading_where_scans_never_go(
    scope: str, flagged: tuple[str, ...]
) -> None:
    found = ("93.184.216.34", "10.0.0.5", "169.254.169.254", "127.0.0.2")
    assert addresses_outside(found, Scope.parse(scope)) == flagged
