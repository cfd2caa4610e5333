"""Each Kubernetes Job's own NATS user: a Secret per Job, scoped to the scan, mounted into its
pod, owned by the Job and gone with it. The real kubernetes-asyncio client against the fake
API server, whose Jobs run the real job runtime and nmap against a port on 127.0.0.1."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contracts.jobs import NATS_CREDS
from contracts.settings import Settings
from handlers import natsauth, permissions
from handlers.launcher import manifest
from handlers.launcher.executor import LaunchRefused
from handlers.launcher.kubernetes import KubernetesExecutor
from handlers.launcher.lifecycle import Stop
from scanners import TOOLS
from tests.handlers.k8s_fake import FakeCluster
from tests.handlers.test_kubernetes_executor import (  # noqa: F401 - fixtures
    NAMESPACE,
    Endings,
    cluster,
    k8s_settings,
    nmap,
    slow,
    until,
)
from workers import natscreds

pytestmark = pytest.mark.slow


@pytest.fixture
def signed(k8s_settings: Settings, tmp_path: Path) -> Settings:  # noqa: F811
    natscreds.ensure(tmp_path / "nats-auth")
    signer = tmp_path / "nats-auth" / "creds" / natscreds.JOB_SIGNER
    return msgspec.structs.replace(k8s_settings, nats_job_signer=str(signer))


@pytest.fixture
async def executor(signed: Settings) -> AsyncIterator[tuple[KubernetesExecutor, Endings]]:
    endings = Endings()
    ex = KubernetesExecutor(signed, endings, None, check_every=0.2, watch_seconds=5)
    await ex.open()
    try:
        yield ex, endings
    finally:
        await ex.shutdown()


def _secret(fake: FakeCluster, scan_id: str) -> dict[str, Any] | None:
    return fake.objects["secrets"].get((NAMESPACE, manifest.secret_name(scan_id)))


async def test_a_job_runs_on_its_own_secret_scoped_to_its_scan_and_owned_by_it(
    cluster: FakeCluster,  # noqa: F811
    executor: tuple[KubernetesExecutor, Endings],
    signed: Settings,
    open_port: int,
) -> None:
    ex, endings = executor
    cmd = nmap(str(open_port))
    before = time.time()
    await ex.start(cmd)
    ending = await endings.of(cmd.scan_id, within=90)
    assert ending.returncode == 0

    job = cluster.job_named(manifest.job_name(cmd.scan_id))
    secret = _secret(cluster, cmd.scan_id)
    assert job is not None and secret is not None
    # Owned by its Job: the garbage collector's to delete with it.
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Job",
        job["metadata"]["name"],
        job["metadata"]["uid"],
    )
    # Its user may do exactly this scan's job subjects, until the Job's own deadline + grace.
    creds = base64.b64decode(secret["data"]["nats.creds"]).decode()
    claims = natsauth.decode_claims(natsauth.creds_jwt(creds))
    scoped = permissions.job(cmd.scan_id, "nmap", TOOLS["nmap"].output_file)
    assert claims["nats"]["pub"] == {"allow": list(scoped.pub_allow)}
    assert claims["nats"]["sub"] == {"allow": list(scoped.sub_allow)}
    assert claims["name"] == f"scan-{cmd.scan_id}"
    lifetime = manifest.creds_lifetime(signed, cmd)
    assert before + lifetime - 5 <= claims["exp"] <= time.time() + lifetime + 5
    # Mounted into the pod, and the job was pointed at it.
    [pod] = [
        p
        for p in cluster.objects["pods"].values()
        if p["metadata"]["labels"]["job-name"] == job["metadata"]["name"]
    ]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env[NATS_CREDS] == f"{manifest.CREDS_DIR}/{manifest.CREDS_KEY}"
    mounted = cluster.workroot / pod["metadata"]["name"] / "nats-creds" / manifest.CREDS_KEY
    assert mounted.read_text() == creds

    # Deleting the Job (as the TTL controller or a cancel does) takes the Secret with it.
    assert await ex.stop(cmd.scan_id, Stop.CANCELLED)
    assert _secret(cluster, cmd.scan_id) is None


async def test_a_cancelled_job_takes_its_secret_along(
    cluster: FakeCluster,  # noqa: F811
    executor: tuple[KubernetesExecutor, Endings],
) -> None:
    ex, _ = executor
    cmd = slow()
    await ex.start(cmd)
    await until(lambda: _secret(cluster, cmd.scan_id) is not None)
    assert await ex.stop(cmd.scan_id, Stop.CANCELLED)
    assert cluster.deletions[manifest.job_name(cmd.scan_id)] == "Background"
    assert _secret(cluster, cmd.scan_id) is None


async def test_a_redelivered_start_keeps_the_one_secret(
    cluster: FakeCluster,  # noqa: F811
    executor: tuple[KubernetesExecutor, Endings],
) -> None:
    ex, _ = executor
    cmd = slow()
    await ex.start(cmd)
    first = _secret(cluster, cmd.scan_id)
    await ex.start(cmd)  # 409 on the Job and on the Secret: the same launch
    assert _secret(cluster, cmd.scan_id) == first
    assert [k for k in cluster.objects["secrets"] if k[1].startswith(f"scan-{cmd.scan_id}")] == [
        (NAMESPACE, manifest.secret_name(cmd.scan_id))
    ]
    await ex.stop(cmd.scan_id, Stop.CANCELLED)


async def test_a_refused_secret_deletes_the_job_and_fails_the_launch(
    cluster: FakeCluster,  # noqa: F811
    executor: tuple[KubernetesExecutor, Endings],
) -> None:
    ex, _ = executor
    cluster.fail("POST", "secrets", 403)
    cmd = slow()
    with pytest.raises(LaunchRefused, match="Forbidden"):
        await ex.start(cmd)
    assert cluster.job_named(manifest.job_name(cmd.scan_id)) is None
    assert not ex.running(cmd.scan_id)
