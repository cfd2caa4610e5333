"""The set-up a cluster deployment runs (deploy/setup-job.yaml): `jetscan streams apply
--replicas 3` against a real three-node JetStream cluster, and `jetscan migrate`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from contracts.settings import Settings
from handlers import topology
from tests.conftest import free_port, run_jetscan

pytestmark = pytest.mark.slow
NATS_SERVER = Path(sys.executable).parent / "nats-server"


@pytest.fixture
async def cluster_url(tmp_path: Path) -> AsyncIterator[str]:
    clients = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    procs = []
    for i in range(3):
        others = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(routes) if j != i)
        procs.append(
            await asyncio.create_subprocess_exec(
                str(NATS_SERVER),
                "-a", "127.0.0.1",
                "-p", str(clients[i]),
                "-js",
                "-sd", str(tmp_path / f"n{i}"),
                "-n", f"n{i}",
                "--cluster_name", "jetscan",
                "--cluster", f"nats://127.0.0.1:{routes[i]}",
                "--routes", others,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )  # fmt: skip
    url = ",".join(f"nats://127.0.0.1:{p}" for p in clients)
    try:
        await _wait_for_meta_leader(url)
        yield url
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()


async def _wait_for_meta_leader(url: str) -> None:
    """Until every node answers JetStream requests: the CLI is pointed at the first node
    alone, which on a loaded machine may come up after the others have elected a leader."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    for node in url.split(","):
        while True:
            try:
                nc = await nats.connect(node, connect_timeout=2, max_reconnect_attempts=0)
                try:
                    await nc.jetstream().account_info()
                    break
                finally:
                    await nc.close()
            except Exception:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def test_streams_apply_with_three_replicas_on_a_cluster(
    cluster_url: str, tmp_path: Path
) -> None:
    env = {"JETSCAN_HOME": str(tmp_path), "JETSCAN_NATS_URL": cluster_url.split(",")[0]}
    code, out, err = await run_jetscan(env, "streams", "apply", "--replicas", "3")
    assert code == 0, err
    assert "created stream COMMANDS" in out
    nc = await nats.connect(cluster_url.split(","))
    try:
        js = nc.jetstream()
        for spec in topology.load().streams:
            info = await js.stream_info(spec.name)
            assert info.config.num_replicas == 3, spec.name
        kv = await js.key_value("launches")
        assert (await kv.status()).stream_info.config.num_replicas == 3
    finally:
        await nc.close()
    code, out, _ = await run_jetscan(env, "streams", "apply", "--replicas", "3")
    assert (code, out) == (0, "nothing to change\n")


async def test_migrate_applies_the_schema_once(settings: Settings, tmp_path: Path) -> None:
    env = {"JETSCAN_HOME": str(tmp_path), "JETSCAN_DATABASE_URL": settings.database_url}
    code, out, err = await run_jetscan(env, "migrate")
    assert (code, out) == (0, "nothing to migrate\n"), err
