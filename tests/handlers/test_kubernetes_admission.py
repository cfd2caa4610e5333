"""The Kubernetes executor behind the same admission: a burst of StartScans never has more
scan Jobs running in the (fake) cluster than `JETSCAN_MAX_RUNNING`, counted from the cluster's
own pods, and waiting scans are QUEUED with a queue position."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from contracts.gen.jetscan import v1
from tests.conftest import TERMINAL, Stack, scan_service, wait_status
from tests.handlers.k8s_fake import FakeCluster
from tests.handlers.test_kubernetes_lifecycle import NAMESPACE, KubeLauncher
from tests.handlers.test_lifecycle import nmap_request

pytestmark = pytest.mark.slow
LIMIT = 2


@pytest.fixture
async def cluster(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FakeCluster]:
    root = tmp_path_factory.mktemp("k8s-admission")
    fake = FakeCluster(root / "nodes", base_env=stack.settings.passthrough, token=uuid.uuid4().hex)
    async with fake.running():
        settings = msgspec.structs.replace(
            stack.settings,
            executor="kubernetes",
            k8s_namespace=NAMESPACE,
            k8s_kubeconfig=str(fake.kubeconfig(root / "kubeconfig")),
            max_running=LIMIT,
        )
        launcher = KubeLauncher(settings)
        await stack.stop_role("launcher")
        await launcher.start()
        try:
            yield fake
        finally:
            await launcher.stop()
            await stack.start_role("launcher")


def running_pods(fake: FakeCluster, scan_ids: set[str]) -> set[str]:
    """Scans of `scan_ids` whose pod's container process is alive in the fake cluster."""
    alive = set()
    for name, proc in fake.procs.items():
        if proc.returncode is not None:
            continue
        pod = fake.objects["pods"].get((NAMESPACE, name))
        if pod is None:
            continue
        scan = pod["metadata"]["labels"].get("jetscan.io/scan-id", "")
        if scan in scan_ids:
            alive.add(scan)
    return alive


async def test_the_kubernetes_executor_obeys_the_running_limit(
    stack: Stack, cluster: FakeCluster, open_port: int
) -> None:
    ids: set[str] = set()
    most = 0
    seen: set[str] = set()

    async def sample() -> None:
        nonlocal most
        while True:
            alive = running_pods(cluster, ids)
            seen.update(alive)
            most = max(most, len(alive))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        async with scan_service(stack) as scans:
            started = [await scans.start_scan(nmap_request(open_port)) for _ in range(6)]
            ids.update(s.id for s in started)
            last = await scans.get_scan(v1.GetScanRequest(id=started[-1].id))
            done = [await wait_status(scans, s.id, TERMINAL, within=180) for s in started]
    finally:
        sampler.cancel()
    assert [d.status for d in done] == [v1.ScanStatus.SUCCEEDED] * 6, [d.error for d in done]
    assert seen == ids, "every scan's pod was seen running"
    assert most <= LIMIT, f"{most} scan pods ran at once with JETSCAN_MAX_RUNNING={LIMIT}"
    assert most == LIMIT, f"at most {most} pod ran at once: the burst proves nothing"
    assert last.status == v1.ScanStatus.QUEUED and last.queue_position >= 1
