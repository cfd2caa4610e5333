"""The Kubernetes executor with the real kubernetes-asyncio client against the fake API server,
whose Jobs run the real job runtime and nmap against ports on 127.0.0.1."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client

from contracts import subjects
from contracts.results import ScanResult
from contracts.scans import ScanStatus, StartScan
from contracts.settings import Settings
from handlers.launcher import kubestate, manifest
from handlers.launcher.executor import Ending, LaunchRefused, LaunchUnavailable
from handlers.launcher.kubernetes import KubernetesExecutor
from handlers.launcher.lifecycle import JOB_DEADLINE, Stop, outcome
from tests.conftest import free_port
from tests.handlers.k8s_fake import FakeCluster, truthy

pytestmark = pytest.mark.slow
NAMESPACE = "scans"


@pytest.fixture
async def cluster(tmp_path: Path, settings: Settings) -> AsyncIterator[FakeCluster]:
    fake = FakeCluster(tmp_path / "nodes", base_env=settings.passthrough, token=uuid.uuid4().hex)
    async with fake.running():
        yield fake


@pytest.fixture
def k8s_settings(settings: Settings, cluster: FakeCluster, tmp_path: Path) -> Settings:
    return msgspec.structs.replace(
        settings,
        executor="kubernetes",
        k8s_namespace=NAMESPACE,
        k8s_kubeconfig=str(cluster.kubeconfig(tmp_path / "kubeconfig")),
        k8s_image_pull_wait=1.0,
    )


class Endings:
    """The executor's reports, as the launcher would receive them."""

    def __init__(self) -> None:
        self.seen: list[Ending] = []
        self._changed = asyncio.Event()

    async def __call__(self, ending: Ending) -> None:
        self.seen.append(ending)
        self._changed.set()

    async def of(self, scan_id: str, within: float = 60) -> Ending:
        async def wait() -> Ending:
            while True:
                for ending in self.seen:
                    if ending.scan_id == scan_id:
                        return ending
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), within)


@pytest.fixture
async def executor(k8s_settings: Settings) -> AsyncIterator[tuple[KubernetesExecutor, Endings]]:
    endings = Endings()
    ex = KubernetesExecutor(k8s_settings, endings, None, check_every=0.2, watch_seconds=5)
    await ex.open()
    try:
        yield ex, endings
    finally:
        await ex.shutdown()


def nmap(ports: str, deadline: int = 120, **config: Any) -> StartScan:
    return StartScan(
        scan_id=uuid.uuid4().hex,
        target="127.0.0.1",
        domain="127.0.0.1",
        tool="nmap",
        config={"ports": ports, "reverse_dns": False, **config},
        deadline_seconds=deadline,
        requested_by="test",
        requested_at=datetime.now(UTC),
    )


def slow() -> StartScan:
    # -T0 waits minutes between probes: a job that runs until something stops it.
    return nmap("1-3", timing=0)


async def until(check: Callable[[], bool], within: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, f"not true within {within}s"
        await asyncio.sleep(0.05)


def settled(ex: KubernetesExecutor, scan_id: str, *, gone: bool) -> bool:
    """The executor has taken in the Job's last state (finished, or deleted when `gone`) and
    has no report in flight: an ending about to be reported twice would be reported by now.
    What a negative check waits for, instead of a fixed sleep."""
    name = manifest.job_name(scan_id)
    if gone:
        seen = name not in ex.jobs
    else:
        job = ex.jobs.get(name)
        seen = job is not None and kubestate.finished(job) is not None
    reporting = any(t.get_name().startswith("k8s-report") for t in ex._tasks)
    return seen and not reporting


def pod_phase(fake: FakeCluster, scan_id: str) -> str:
    for pod in fake.objects["pods"].values():
        if pod["metadata"]["labels"].get("jetscan.io/scan-id") == scan_id:
            return str(pod["status"].get("phase", ""))
    return ""


def judged(ending: Ending) -> tuple[ScanStatus, str]:
    return outcome(
        ending.returncode,
        ending.stopped,
        ending.deadline_seconds,
        cause=ending.cause,
        detail=ending.detail,
    )


def posts(fake: FakeCluster) -> int:
    return sum(1 for method, path, _ in fake.requests if method == "POST" and "/jobs" in path)


async def test_a_job_runs_the_scan_and_its_exit_code_is_reported(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster, open_port: int
) -> None:
    ex, endings = executor
    cmd = nmap(str(open_port))
    await ex.start(cmd)
    assert ex.running(cmd.scan_id)
    ending = await endings.of(cmd.scan_id)
    assert ending == Ending(scan_id=cmd.scan_id, deadline_seconds=120, returncode=0, attempt=1)
    assert judged(ending) == (ScanStatus.SUCCEEDED, "")
    assert not ex.running(cmd.scan_id)
    job = cluster.job_named(manifest.job_name(cmd.scan_id), NAMESPACE)
    assert job is not None
    assert job["metadata"]["labels"]["jetscan.io/scan-id"] == cmd.scan_id
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    # The job read the pod's exit code through a label-selected pod list.
    pod_lists = [q for m, p, q in cluster.requests if m == "GET" and p.endswith("/pods")]
    assert any(manifest.pod_selector(cmd.scan_id) == q.get("labelSelector") for q in pod_lists)


async def test_a_redelivered_start_finds_the_job_and_runs_nothing_twice(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster, open_port: int
) -> None:
    ex, endings = executor
    cmd = nmap(str(open_port))
    await ex.start(cmd)
    await ex.start(cmd)  # 409 AlreadyExists: success
    assert posts(cluster) == 2
    await endings.of(cmd.scan_id)
    await until(lambda: settled(ex, cmd.scan_id, gone=False), within=60)
    assert [e.scan_id for e in endings.seen].count(cmd.scan_id) == 1
    assert sum(1 for name in cluster.procs if name.startswith(manifest.job_name(cmd.scan_id))) == 1


@pytest.mark.parametrize(("code", "cause"), [(401, "Unauthorized"), (403, "Forbidden")])
async def test_a_refused_create_fails_with_the_api_reason(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster, code: int, cause: str
) -> None:
    ex, _ = executor
    cluster.fail("POST", "jobs", code)
    with pytest.raises(LaunchRefused) as err:
        await ex.start(slow())
    assert err.value.cause == cause
    assert err.value.detail


async def test_an_invalid_job_is_refused(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster
) -> None:
    ex, _ = executor
    # A deadline Kubernetes cannot take: the API answers 422 Invalid.
    cmd = msgspec.structs.replace(slow(), deadline_seconds=-(10**6))
    with pytest.raises(LaunchRefused) as err:
        await ex.start(cmd)
    assert err.value.cause == "Invalid"


@pytest.mark.parametrize("code", [500, 503, 429])
async def test_a_server_error_is_transient_and_the_next_try_starts_the_job(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster, code: int, open_port: int
) -> None:
    ex, endings = executor
    cmd = nmap(str(open_port))
    cluster.fail("POST", "jobs", code)
    with pytest.raises(LaunchUnavailable):
        await ex.start(cmd)
    assert not ex.running(cmd.scan_id)
    await ex.start(cmd)
    assert (await endings.of(cmd.scan_id)).returncode == 0


async def test_an_unreachable_api_is_transient(k8s_settings: Settings, tmp_path: Path) -> None:
    nowhere = FakeCluster(tmp_path, base_env={}, token="x")
    nowhere.url = f"http://127.0.0.1:{free_port()}"
    settings = msgspec.structs.replace(
        k8s_settings, k8s_kubeconfig=str(nowhere.kubeconfig(tmp_path / "nowhere"))
    )
    ex = KubernetesExecutor(settings, Endings(), None, request_timeout=5)
    await ex.open()
    try:
        with pytest.raises(LaunchUnavailable):
            await ex.start(slow())
    finally:
        await ex.shutdown()


async def test_the_job_times_itself_out_and_publishes_its_partial_result(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster, nc: Client
) -> None:
    ex, endings = executor
    cmd = msgspec.structs.replace(slow(), deadline_seconds=3)
    results = await nc.subscribe(subjects.scan_result("nmap", cmd.scan_id))
    try:
        await ex.start(cmd)
        ending = await endings.of(cmd.scan_id)
        # The job stopped nmap at its own deadline, inside the Job's longer backstop.
        assert ending.cause != "DeadlineExceeded", ending
        assert ending.returncode == JOB_DEADLINE, ending
        assert judged(ending) == (ScanStatus.TIMED_OUT, "deadline of 3s passed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            msg = await results.next_msg(timeout=max(deadline - loop.time(), 0.1))
            result = msgspec.json.decode(msg.data, type=ScanResult)
            if result.scan_id == cmd.scan_id:
                break
        assert result.partial, result
    finally:
        await results.unsubscribe()


async def test_an_oom_kill_fails_the_scan_with_oomkilled(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster
) -> None:
    ex, endings = executor
    cmd = slow()
    await ex.start(cmd)
    await until(lambda: pod_phase(cluster, cmd.scan_id) == "Running")
    await cluster.oom_kill(manifest.job_name(cmd.scan_id))
    ending = await endings.of(cmd.scan_id)
    assert (ending.returncode, ending.cause) == (137, "OOMKilled")
    status, reason = judged(ending)
    assert status == ScanStatus.FAILED
    assert reason.startswith("OOMKilled")


async def test_cancel_deletes_the_job_in_the_background_and_its_pod_goes(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster
) -> None:
    ex, endings = executor
    cmd = slow()
    await ex.start(cmd)
    await until(lambda: pod_phase(cluster, cmd.scan_id) == "Running")
    assert await ex.stop(cmd.scan_id, Stop.CANCELLED)
    ending = await endings.of(cmd.scan_id)
    assert ending.stopped is Stop.CANCELLED
    assert judged(ending)[0] == ScanStatus.CANCELLED
    name = manifest.job_name(cmd.scan_id)
    assert cluster.deletions[name] == "Background"
    await until(lambda: pod_phase(cluster, cmd.scan_id) == "")
    proc = next(p for n, p in cluster.procs.items() if n.startswith(name))
    assert proc.returncode is not None  # the job runtime was stopped with its pod
    assert not ex.running(cmd.scan_id)
    # Its deletion is not reported again, and a second stop finds nothing.
    await until(lambda: settled(ex, cmd.scan_id, gone=True), within=60)
    assert [e.scan_id for e in endings.seen].count(cmd.scan_id) == 1
    assert not await ex.stop(cmd.scan_id, Stop.CANCELLED)


async def test_a_job_that_cannot_pull_its_image_is_deleted_and_fails(
    k8s_settings: Settings, cluster: FakeCluster
) -> None:
    image = "registry.invalid/jetscan-nmap:missing"
    cluster.unpullable.add(image)
    settings = msgspec.structs.replace(k8s_settings, k8s_images={"nmap": image})
    endings = Endings()
    ex = KubernetesExecutor(settings, endings, None, check_every=0.2)
    await ex.open()
    try:
        cmd = slow()
        await ex.start(cmd)
        ending = await endings.of(cmd.scan_id)
        # The kubelet says ErrImagePull first, then ImagePullBackOff; either ends the wait.
        assert ending.cause in {"ErrImagePull", "ImagePullBackOff"}
        assert image in ending.detail
        status, reason = judged(ending)
        assert status == ScanStatus.FAILED
        assert reason.startswith(f"{ending.cause}: ")
        assert cluster.deletions[manifest.job_name(cmd.scan_id)] == "Background"
    finally:
        await ex.shutdown()


async def test_after_410_gone_the_executor_lists_again_and_misses_nothing(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster, open_port: int
) -> None:
    ex, endings = executor

    def lists() -> int:
        return sum(
            1
            for m, p, q in cluster.requests
            if m == "GET" and p.endswith("/jobs") and not truthy(q.get("watch"))
        )

    await until(lambda: any(truthy(q.get("watch")) for _, _, q in cluster.requests))
    before = lists()
    # Events the watch never delivers, then compacted away: only a new list can show them.
    cluster.hold_watches = True
    cmd = nmap(str(open_port))
    await ex.start(cmd)
    await until(lambda: pod_phase(cluster, cmd.scan_id) == "Succeeded", within=60)
    cluster.hold_watches = False
    cluster.compact()
    ending = await endings.of(cmd.scan_id)
    assert ending.returncode == 0
    assert lists() > before
    expired = [
        q
        for m, p, q in cluster.requests
        if truthy(q.get("watch")) and int(q.get("resourceVersion", "0")) < cluster.compacted
    ]
    assert expired, "the executor resumed its watch from a compacted version"


async def test_a_new_executor_reports_jobs_that_ended_while_none_watched(
    k8s_settings: Settings, cluster: FakeCluster, open_port: int
) -> None:
    first = KubernetesExecutor(k8s_settings, Endings(), None)
    await first.open()
    cmd = nmap(str(open_port))
    try:
        await first.start(cmd)
    finally:
        await first.shutdown()  # the Job keeps running without a launcher
    await until(lambda: pod_phase(cluster, cmd.scan_id) == "Succeeded", within=60)
    endings = Endings()
    second = KubernetesExecutor(k8s_settings, endings, None)
    await second.open()
    try:
        assert (await endings.of(cmd.scan_id)).returncode == 0
    finally:
        await second.shutdown()


async def test_the_watch_outlives_api_errors(
    k8s_settings: Settings, cluster: FakeCluster, open_port: int
) -> None:
    cluster.fail("LIST", "jobs", 503)
    cluster.fail("WATCH", "jobs", 500)
    endings = Endings()
    ex = KubernetesExecutor(k8s_settings, endings, None, watch_seconds=5)
    await ex.open()
    try:
        cmd = nmap(str(open_port))
        await ex.start(cmd)
        assert (await endings.of(cmd.scan_id, within=90)).returncode == 0
    finally:
        await ex.shutdown()


async def test_a_job_deleted_by_someone_else_is_left_to_liveness(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster
) -> None:
    ex, endings = executor
    cmd = slow()
    await ex.start(cmd)
    await until(lambda: pod_phase(cluster, cmd.scan_id) == "Running")
    await until(lambda: ex.running(cmd.scan_id) and manifest.job_name(cmd.scan_id) in ex.jobs)
    cluster._delete_job(NAMESPACE, manifest.job_name(cmd.scan_id), "Background")
    await until(lambda: not ex.running(cmd.scan_id))
    await until(lambda: settled(ex, cmd.scan_id, gone=True), within=60)
    assert all(e.scan_id != cmd.scan_id for e in endings.seen)


async def test_a_replica_that_has_not_seen_the_job_can_still_stop_it(
    executor: tuple[KubernetesExecutor, Endings], k8s_settings: Settings, cluster: FakeCluster
) -> None:
    ex, _ = executor
    cmd = slow()
    await ex.start(cmd)
    endings = Endings()
    other = KubernetesExecutor(k8s_settings, endings, None)
    await other.open()
    try:
        # The other replica's cancel finds the Job by name, whatever its watch has seen.
        assert await other.stop(cmd.scan_id, Stop.CANCELLED)
        assert (await endings.of(cmd.scan_id)).stopped is Stop.CANCELLED
        assert cluster.deletions[manifest.job_name(cmd.scan_id)] == "Background"
    finally:
        await other.shutdown()


async def test_a_job_of_the_same_name_for_another_scan_is_not_taken_for_this_one(
    executor: tuple[KubernetesExecutor, Endings], k8s_settings: Settings, cluster: FakeCluster
) -> None:
    ex, _ = executor
    cmd = slow()
    squatter = manifest.build_job(
        msgspec.structs.replace(cmd, scan_id="someone-else"), k8s_settings
    )
    squatter["metadata"]["name"] = manifest.job_name(cmd.scan_id)
    cluster.put_job(NAMESPACE, squatter)
    with pytest.raises(LaunchRefused) as err:
        await ex.start(cmd)
    assert err.value.cause == "AlreadyExists"
    assert "someone-else" in err.value.detail


async def test_a_syn_scan_is_refused_unless_raw_sockets_are_allowed(
    executor: tuple[KubernetesExecutor, Endings], k8s_settings: Settings, cluster: FakeCluster
) -> None:
    ex, _ = executor
    cmd = nmap("22", scan_type="syn")
    with pytest.raises(LaunchRefused) as err:
        await ex.start(cmd)
    assert err.value.cause == "RawSocketsDisabled"
    assert posts(cluster) == 0
    allowed = KubernetesExecutor(
        msgspec.structs.replace(k8s_settings, k8s_raw_sockets=True), Endings(), None
    )
    await allowed.open()
    try:
        await allowed.start(cmd)
        job = cluster.job_named(manifest.job_name(cmd.scan_id), NAMESPACE)
        assert job is not None
        [container] = job["spec"]["template"]["spec"]["containers"]
        assert container["securityContext"]["capabilities"]["add"] == ["NET_RAW"]
        await allowed.stop(cmd.scan_id, Stop.CANCELLED)
    finally:
        await allowed.shutdown()


async def test_a_lost_node_is_reported_as_a_loss_of_the_jobs_attempt(
    executor: tuple[KubernetesExecutor, Endings], cluster: FakeCluster
) -> None:
    ex, endings = executor
    cmd = slow()
    await ex.start(cmd)
    await until(lambda: pod_phase(cluster, cmd.scan_id) == "Running")
    await cluster.lose_node(manifest.job_name(cmd.scan_id))
    ending = await endings.of(cmd.scan_id)
    assert (ending.attempt, ending.cause) == (1, "lost")
    assert ending.detail == "DeletionByPodGC: PodGC: node no longer exists"
    assert not ex.running(cmd.scan_id)


async def test_a_retry_is_a_new_job_and_reports_its_own_attempt(
    executor: tuple[KubernetesExecutor, Endings], k8s_settings: Settings, cluster: FakeCluster
) -> None:
    ex, endings = executor
    cmd = slow()
    await ex.start(cmd)
    await until(lambda: pod_phase(cluster, cmd.scan_id) == "Running")
    await cluster.lose_node(manifest.job_name(cmd.scan_id))
    await endings.of(cmd.scan_id)
    endings.seen.clear()
    # The first attempt's failed Job is still there: the second does not collide with it.
    assert cluster.job_named(manifest.job_name(cmd.scan_id), NAMESPACE) is not None
    await ex.start(cmd, attempt=2, console_after=7)
    second = manifest.job_name(cmd.scan_id, 2)
    job = cluster.job_named(second, NAMESPACE)
    assert job is not None
    [container] = job["spec"]["template"]["spec"]["containers"]
    environ = {e["name"]: e["value"] for e in container["env"]}
    assert (environ["JETSCAN_ATTEMPT"], environ["JETSCAN_CONSOLE_AFTER"]) == ("2", "7")
    await until(lambda: ex.running(cmd.scan_id) and second in ex.jobs)
    # A replica that never saw either Job stops the running one, not the failed first.
    other_endings = Endings()
    other = KubernetesExecutor(k8s_settings, other_endings, None)
    await other.open()
    try:
        assert await other.stop(cmd.scan_id, Stop.CANCELLED)
        await until(lambda: any(e.stopped for e in other_endings.seen))
        [stopped] = [e for e in other_endings.seen if e.stopped]
        assert (stopped.stopped, stopped.attempt) == (Stop.CANCELLED, 2)
        assert cluster.deletions == {second: "Background"}
    finally:
        await other.shutdown()
    await until(lambda: not ex.running(cmd.scan_id))
    await until(lambda: second not in ex.jobs)
    # The deleted Job was stopped by someone else: this replica reports nothing for it.
    assert endings.seen == []
