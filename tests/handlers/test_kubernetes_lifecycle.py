"""StartScan → Kubernetes Job → results in PostgreSQL, through the gRPC edge, the launcher with
`JETSCAN_EXECUTOR=kubernetes`, the fake API server running the real job runtime, and ingest.

The session stack's launcher (local executor) is stopped for this module and a launcher with
the kubernetes executor takes the same durable consumer; the stack's launcher comes back after.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec
import nats
import pytest

from contracts import wire
from contracts.gen.jetscan import v1
from contracts.results import Heartbeat
from contracts.scans import StartScan
from contracts.settings import Settings
from handlers.launcher import manifest
from tests.conftest import TERMINAL, Stack, scan_service, wait_status
from tests.handlers.k8s_fake import FakeCluster
from tests.handlers.test_lifecycle import nmap_request, slow_nmap
from tests.handlers.test_retry import console_seqs, ran_twice_as_one_scan, standin

pytestmark = pytest.mark.slow
NAMESPACE = "scans"


class KubeLauncher:
    """The launcher role with the kubernetes executor, against the session's servers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from workers.roles import supervise

        self._stop = asyncio.Event()
        self._task = asyncio.create_task(supervise(self.settings, ["launcher"], self._stop))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)


@pytest.fixture(scope="module")
async def cluster(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[FakeCluster, KubeLauncher]]:
    root = tmp_path_factory.mktemp("k8s")
    fake = FakeCluster(root / "nodes", base_env=stack.settings.passthrough, token=uuid.uuid4().hex)
    async with fake.running():
        settings = msgspec.structs.replace(
            stack.settings,
            executor="kubernetes",
            k8s_namespace=NAMESPACE,
            k8s_kubeconfig=str(fake.kubeconfig(root / "kubeconfig")),
        )
        launcher = KubeLauncher(settings)
        await stack.stop_role("launcher")
        await launcher.start()
        try:
            yield fake, launcher
        finally:
            await launcher.stop()
            await stack.start_role("launcher")


@pytest.fixture
async def scans(
    stack: Stack, cluster: tuple[FakeCluster, KubeLauncher]
) -> AsyncIterator[v1.ScanServiceStub]:
    async with scan_service(stack) as stub:
        yield stub


def fake_of(cluster: tuple[FakeCluster, KubeLauncher]) -> FakeCluster:
    return cluster[0]


async def test_a_scan_runs_as_a_kubernetes_job_and_its_findings_land_in_postgres(
    scans: v1.ScanServiceStub, cluster: tuple[FakeCluster, KubeLauncher], open_port: int
) -> None:
    fake = fake_of(cluster)
    started = await scans.start_scan(nmap_request(open_port))
    done = await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED})
    assert done.exit_code == 0
    page = await scans.list_findings(v1.ListFindingsRequest(scan_id=started.id))
    assert ("127.0.0.1", open_port, "tcp") in [(f.host, f.port, f.protocol) for f in page.findings]
    job = fake.job_named(manifest.job_name(started.id), NAMESPACE)
    assert job is not None
    assert job["metadata"]["labels"]["jetscan.io/scan-id"] == started.id
    assert job["metadata"]["labels"]["jetscan.io/tool"] == "nmap"
    annotations = job["metadata"]["annotations"]
    assert annotations["jetscan.io/deadline-seconds"] == str(started.deadline_seconds)
    assert job["spec"]["activeDeadlineSeconds"] > started.deadline_seconds
    assert [c["type"] for c in job["status"]["conditions"]][-1] == "Complete"


async def test_cancel_deletes_the_job(
    scans: v1.ScanServiceStub, cluster: tuple[FakeCluster, KubeLauncher]
) -> None:
    fake = fake_of(cluster)
    started = await scans.start_scan(slow_nmap())
    await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
    await scans.cancel_scan(v1.CancelScanRequest(id=started.id))
    done = await wait_status(scans, started.id, {v1.ScanStatus.CANCELLED}, within=30)
    assert done.error == "cancelled on request"
    name = manifest.job_name(started.id)
    assert fake.deletions[name] == "Background"
    assert fake.job_named(name) is None
    proc = next(p for n, p in fake.procs.items() if n.startswith(name))
    await asyncio.wait_for(proc.wait(), 30)


async def test_a_scan_past_its_deadline_times_out(
    scans: v1.ScanServiceStub, cluster: tuple[FakeCluster, KubeLauncher]
) -> None:
    req = slow_nmap()
    req.deadline_seconds = 3
    started = await scans.start_scan(req)
    done = await wait_status(scans, started.id, {v1.ScanStatus.TIMED_OUT}, within=40)
    # The job timed itself out (and published what it had), before Kubernetes' backstop.
    assert done.error == "deadline of 3s passed"


async def test_an_oom_killed_job_fails_the_scan(
    scans: v1.ScanServiceStub, cluster: tuple[FakeCluster, KubeLauncher]
) -> None:
    fake = fake_of(cluster)
    started = await scans.start_scan(slow_nmap())
    await wait_status(scans, started.id, {v1.ScanStatus.RUNNING})
    await fake.oom_kill(manifest.job_name(started.id))
    done = await wait_status(scans, started.id, {v1.ScanStatus.FAILED}, within=30)
    assert done.error.startswith("OOMKilled: the job ran out of memory")
    assert done.exit_code == 137


async def test_a_forbidden_create_fails_the_scan_with_the_reason(
    scans: v1.ScanServiceStub, cluster: tuple[FakeCluster, KubeLauncher]
) -> None:
    fake = fake_of(cluster)
    fake.fail("POST", "jobs", 403)
    started = await scans.start_scan(slow_nmap())
    done = await wait_status(scans, started.id, {v1.ScanStatus.FAILED}, within=30)
    assert done.error.startswith("Forbidden: jobs.batch is forbidden")
    assert fake.job_named(manifest.job_name(started.id)) is None


async def test_an_unavailable_api_delays_the_scan_and_loses_nothing(
    scans: v1.ScanServiceStub, cluster: tuple[FakeCluster, KubeLauncher], open_port: int
) -> None:
    fake = fake_of(cluster)
    fake.fail("POST", "jobs", 503, times=2)
    posts_before = sum(1 for m, p, _ in fake.requests if m == "POST")
    started = await scans.start_scan(nmap_request(open_port))
    done = await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED}, within=60)
    assert done.exit_code == 0
    # Two refusals (nak, 1 s; nak, 5 s), then the create that worked: one Job, run once.
    assert sum(1 for m, p, _ in fake.requests if m == "POST") - posts_before == 3
    name = manifest.job_name(started.id)
    assert sum(1 for n in fake.procs if n.startswith(name)) == 1


async def test_reconcile_on_start_fails_lost_scans_and_deletes_orphan_jobs(
    stack: Stack, scans: v1.ScanServiceStub, cluster: tuple[FakeCluster, KubeLauncher]
) -> None:
    fake, launcher = cluster
    await launcher.stop()
    lost_scan = uuid.uuid4().hex
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO scans (id, target, domain, tool, status, deadline_seconds, created_at,"
            " started_at, updated_at) VALUES ($1, '127.0.0.1', '127.0.0.1', 'nmap', 'running',"
            " 600, $2, $2, $2)",
            lost_scan,
            datetime.now(UTC),
        )
    finally:
        await conn.close()
    nc = await nats.connect(stack.settings.nats_url)
    try:
        # A fresh heartbeat keeps ingest's liveness away: reconcile must be what ends it.
        kv = await nc.jetstream().key_value("heartbeats")
        beat = Heartbeat(scan_id=lost_scan, at=datetime.now(UTC), pid=1)
        await kv.put(lost_scan, wire.encode(beat))
    finally:
        await nc.drain()
    orphan = uuid.uuid4().hex
    # A Job left behind by a scan jetscan never heard of (a wiped database, say).
    never_started = StartScan(
        scan_id=orphan,
        target="127.0.0.1",
        domain="127.0.0.1",
        tool="nmap",
        config={},
        deadline_seconds=60,
        requested_by="nobody",
        requested_at=datetime.now(UTC),
    )
    fake.put_job(NAMESPACE, manifest.build_job(never_started, launcher.settings))
    await launcher.start()
    done = await wait_status(scans, lost_scan, {v1.ScanStatus.FAILED}, within=30)
    # Lost, so it would run again; but nothing ever commanded this scan to start.
    assert done.error == (
        f"lost: no Job for the scan in namespace {NAMESPACE};"
        " its start command is gone, so it cannot run again"
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while fake.job_named(manifest.job_name(orphan)) is not None:
        assert loop.time() < deadline, "the orphan Job was not deleted"
        await asyncio.sleep(0.1)
    assert fake.deletions[manifest.job_name(orphan)] == "Background"


async def lose_running_attempt(
    stack: Stack, scans: v1.ScanServiceStub, fake: FakeCluster, scan_id: str, attempt: int
) -> None:
    """Wait for the scan's `attempt` to run its stand-in (its first line stored), then take
    its pod's node away."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    name = manifest.job_name(scan_id, attempt)
    while True:
        scan = await scans.get_scan(v1.GetScanRequest(id=scan_id))
        running = [
            pod_name
            for (_, pod_name), pod in fake.objects["pods"].items()
            if pod["metadata"]["labels"].get("job-name") == name
            and pod_name in fake.procs
            and fake.procs[pod_name].returncode is None
        ]
        texts = [text for _, text in await console_seqs(stack, scan_id)]
        said = texts.count("stand-in: about to scan") == attempt
        if scan.status == v1.ScanStatus.RUNNING and scan.attempts == attempt and running and said:
            break
        assert scan.status not in TERMINAL, f"ended {scan.status}: {scan.error}"
        assert loop.time() < deadline, f"attempt {attempt} never ran: {scan.status}"
        await asyncio.sleep(0.1)
    await fake.lose_node(name)


@pytest.fixture
def slow_then_scan(fake: FakeCluster, tmp_path: Path) -> Iterator[None]:
    """Pods run a stand-in nmap that says so, waits 4 s, then runs the real nmap."""
    nmap = shutil.which("nmap")
    assert nmap is not None
    slow = standin(tmp_path, "nmap", f'echo "stand-in: about to scan"\nsleep 4\nexec {nmap} "$@"')
    before = fake.base_env
    fake.base_env = before | {"JETSCAN_PROGRAMS": f"nmap={slow}"}
    try:
        yield
    finally:
        fake.base_env = before


@pytest.fixture
def fake(cluster: tuple[FakeCluster, KubeLauncher]) -> FakeCluster:
    return cluster[0]


@pytest.mark.usefixtures("slow_then_scan")
async def test_a_scan_whose_node_was_lost_runs_again_as_a_new_job(
    stack: Stack, scans: v1.ScanServiceStub, fake: FakeCluster, open_port: int
) -> None:
    started = await scans.start_scan(nmap_request(open_port))
    await lose_running_attempt(stack, scans, fake, started.id, 1)
    done = await wait_status(scans, started.id, TERMINAL, within=90)
    assert done.status == v1.ScanStatus.SUCCEEDED, done.error
    assert done.attempts == 2
    first = fake.job_named(manifest.job_name(started.id))
    second = fake.job_named(manifest.job_name(started.id, 2))
    assert first is not None and second is not None
    assert [c["type"] for c in first["status"]["conditions"]][-1] == "Failed"
    assert [c["type"] for c in second["status"]["conditions"]][-1] == "Complete"
    assert second["metadata"]["labels"]["jetscan.io/attempt"] == "2"
    await ran_twice_as_one_scan(stack, scans, started.id, open_port)


@pytest.mark.usefixtures("slow_then_scan")
async def test_a_scan_that_loses_every_attempt_fails_as_lost(
    stack: Stack, scans: v1.ScanServiceStub, fake: FakeCluster, open_port: int
) -> None:
    started = await scans.start_scan(nmap_request(open_port))
    await lose_running_attempt(stack, scans, fake, started.id, 1)
    await lose_running_attempt(stack, scans, fake, started.id, 2)
    done = await wait_status(scans, started.id, TERMINAL, within=60)
    assert done.status == v1.ScanStatus.FAILED
    assert done.error == ("lost: DeletionByPodGC: PodGC: node no longer exists (attempt 2 of 2)"), (
        done.error
    )
    assert done.attempts == 2
    assert fake.job_named(manifest.job_name(started.id, 3)) is None
