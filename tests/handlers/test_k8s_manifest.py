"""The scan Job builder: every Job it makes is valid Kubernetes, least-privileged, and carries
the env contract without a secret value."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contracts.jobs import CONFIG, NATS_CREDS, NATS_URL, SCAN_ID, WORKDIR
from contracts.scans import StartScan
from contracts.settings import Address, Settings
from handlers.launcher import manifest
from scanners import TOOLS
from tests.kubeschema import validate

BASE = Settings(
    home=Path("/var/lib/jetscan"),
    grpc_addr=Address("127.0.0.1", 50051),
    http_addr=Address("127.0.0.1", 8080),
    nats_url="nats://nats.jetscan.svc:4222",
    database_url="postgresql://jetscan:hunter2@pg/jetscan",
    token="jst_secret_token",
    executor="kubernetes",
    k8s_namespace="scans",
)


def start(
    tool: str = "nmap", scan_id: str = "0123456789abcdef0123456789abcdef", **config: Any
) -> StartScan:
    return StartScan(
        scan_id=scan_id,
        target="127.0.0.1",
        domain="127.0.0.1",
        tool=tool,
        config=config,
        deadline_seconds=600,
        requested_by="test",
        requested_at=datetime(2026, 6, 1, tzinfo=UTC),
    )


CASES = [
    ("connect scan", start(), BASE),
    ("syn scan", start(scan_type="syn", ports="22"), BASE),
    (
        "with NATS credentials",
        start(),
        msgspec.structs.replace(BASE, k8s_nats_creds_secret="jetscan-nats-job"),
    ),
    (
        "with its own NATS user",
        start(),
        msgspec.structs.replace(
            BASE,
            nats_url="tls://nats.jetscan.svc:4222",
            nats_job_signer="/var/run/jetscan/nats/job-signer.json",
            k8s_nats_creds_secret="jetscan-nats-job",
        ),
    ),
    (
        "configured image",
        start(),
        msgspec.structs.replace(
            BASE, k8s_images={"nmap": "registry.example:5000/jetscan-nmap:0.1.0"}
        ),
    ),
    ("odd scan id", start(scan_id="Sched_2026-06-01T00-00_" + "x" * 90), BASE),
    *[(f"tool {name}", start(tool=name), BASE) for name in sorted(TOOLS)],
]


def container(job: dict[str, Any]) -> dict[str, Any]:
    [c] = job["spec"]["template"]["spec"]["containers"]
    return c


def env(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(job)["env"]}


@pytest.mark.parametrize(("case", "cmd", "settings"), CASES, ids=[c[0] for c in CASES])
def test_every_job_is_valid_kubernetes(case: str, cmd: StartScan, settings: Settings) -> None:
    job = manifest.build_job(cmd, settings)
    validate(job)
    assert len(job["metadata"]["name"]) <= 63
    for value in job["metadata"]["labels"].values():
        assert len(value) <= 63


@pytest.mark.parametrize(("case", "cmd", "settings"), CASES, ids=[c[0] for c in CASES])
def test_no_secret_value_reaches_the_job(case: str, cmd: StartScan, settings: Settings) -> None:
    text = msgspec.json.encode(manifest.build_job(cmd, settings)).decode()
    for secret in ("hunter2", "postgresql://", "jst_secret_token"):
        assert secret not in text


def test_job_shape_and_env_contract() -> None:
    cmd = start(ports="22,80")
    job = manifest.build_job(cmd, BASE)
    assert job["metadata"]["name"] == "scan-0123456789abcdef0123456789abcdef"
    assert job["metadata"]["namespace"] == "scans"
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/name": "jetscan",
        "app.kubernetes.io/component": "scan",
        "jetscan.io/scan-id": cmd.scan_id,
        "jetscan.io/tool": "nmap",
        "jetscan.io/attempt": "1",
    }
    assert job["metadata"]["annotations"] == {
        "jetscan.io/scan-id": cmd.scan_id,
        "jetscan.io/deadline-seconds": "600",
    }
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    # Past the scan's deadline by the image pull wait and a minute to publish a partial
    # result: the job times itself out; Kubernetes' deadline is only a backstop.
    assert spec["activeDeadlineSeconds"] == 600 + int(BASE.k8s_image_pull_wait) + 60
    assert spec["ttlSecondsAfterFinished"] == 3600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert spec["template"]["metadata"]["labels"] == job["metadata"]["labels"]
    c = container(job)
    assert c["image"] == "ghcr.io/jetscan/jetscan-nmap:0.1.0"
    assert c["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    e = env(job)
    assert e[SCAN_ID] == cmd.scan_id
    assert e[NATS_URL] == "nats://nats.jetscan.svc:4222"
    assert msgspec.json.decode(e[CONFIG]) == {"ports": "22,80"}
    assert e[WORKDIR] == e["HOME"] == e["TMPDIR"] == "/scratch"
    assert NATS_CREDS not in e
    assert c["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert pod["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]


def test_a_connect_scan_runs_non_root_with_no_capabilities() -> None:
    job = manifest.build_job(start(), BASE)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(job)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_a_syn_scan_gets_net_raw_only_and_runs_as_root() -> None:
    job = manifest.build_job(start(scan_type="syn"), BASE)
    sc = container(job)["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    # A non-root process never gets an added capability into its effective set (Kubernetes
    # has no ambient capabilities), so the one raw-socket job runs as uid 0.
    assert sc["runAsUser"] == 0 and sc["runAsNonRoot"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True


def test_nats_credentials_come_from_a_secret_volume() -> None:
    settings = msgspec.structs.replace(BASE, k8s_nats_creds_secret="jetscan-nats-job")
    job = manifest.build_job(start(), settings)
    pod = job["spec"]["template"]["spec"]
    assert {
        "name": "nats-creds",
        "secret": {
            "secretName": "jetscan-nats-job",
            "items": [{"key": "nats.creds", "path": "nats.creds"}],
            "defaultMode": 0o440,
        },
    } in pod["volumes"]
    assert {
        "name": "nats-creds",
        "mountPath": "/var/run/secrets/jetscan/nats",
        "readOnly": True,
    } in container(job)["volumeMounts"]
    assert env(job)[NATS_CREDS] == "/var/run/secrets/jetscan/nats/nats.creds"


SIGNED = msgspec.structs.replace(BASE, nats_job_signer="/run/job-signer.json")


@pytest.mark.parametrize(("tls", "sources"), [(False, 1), (True, 2)])
def test_with_a_signing_key_each_job_mounts_its_own_secret(tls: bool, sources: int) -> None:
    settings = SIGNED
    if tls:
        settings = msgspec.structs.replace(
            SIGNED, nats_url="tls://nats.jetscan.svc:4222", k8s_nats_creds_secret="jetscan-nats"
        )
    cmd = start()
    job = manifest.build_job(cmd, settings)
    [volume] = [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "nats-creds"]
    projected = volume["projected"]["sources"]
    assert len(projected) == sources
    # Its credentials from its own Secret; only the CA (not secret) from the shared one.
    assert projected[0] == {
        "secret": {
            "name": manifest.secret_name(cmd.scan_id),
            "items": [{"key": "nats.creds", "path": "nats.creds"}],
        }
    }
    if tls:
        assert projected[1] == {
            "secret": {"name": "jetscan-nats", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        }
        assert env(job)["SSL_CERT_FILE"] == "/var/run/secrets/jetscan/nats/ca.crt"
    assert env(job)[NATS_CREDS] == "/var/run/secrets/jetscan/nats/nats.creds"
    validate(job)


def test_a_jobs_secret_is_owned_by_the_job_and_holds_only_its_creds() -> None:
    cmd = start(scan_id="Scan_With.Odd:Chars")
    secret = manifest.build_secret(cmd, SIGNED, "uid-1", "-----creds-----")
    validate(secret)
    meta = secret["metadata"]
    assert meta["name"] == manifest.job_name(cmd.scan_id) + "-nats"
    assert len(meta["name"]) <= 253
    assert meta["namespace"] == "scans"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": manifest.job_name(cmd.scan_id),
            "uid": "uid-1",
            "controller": False,
            "blockOwnerDeletion": False,
        }
    ]
    assert secret["immutable"] is True
    assert secret["data"] == {"nats.creds": "LS0tLS1jcmVkcy0tLS0t"}


def test_a_jobs_creds_live_as_long_as_kubernetes_lets_the_job_run() -> None:
    cmd = start()
    assert manifest.creds_lifetime(BASE, cmd) == (
        manifest.active_deadline(BASE, cmd.deadline_seconds) + manifest.GRACE_SECONDS
    )


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("scan_id", "name"),
    [
        ("abc", "scan-abc"),
        ("0123456789abcdef0123456789abcdef", "scan-0123456789abcdef0123456789abcdef"),
        ("ABC", f"scan-abc-{sha('ABC')}"),
        ("a_b", f"scan-a-b-{sha('a_b')}"),
        ("-x-", f"scan-x-{sha('-x-')}"),
        ("_", f"scan-{sha('_')}"),
        ("y" * 60, f"scan-{'y' * 40}-{sha('y' * 60)}"),
    ],
)
def test_job_names(scan_id: str, name: str) -> None:
    assert manifest.job_name(scan_id) == name


def test_job_names_are_distinct_dns_labels() -> None:
    ids = ["abc", "ABC", "a_b", "a-b", "x" * 128, "x" * 127, "_", "-"]
    names = [manifest.job_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    for name in names:
        assert len(name) <= 63 and name[0].isalnum() and name[-1].isalnum()


def test_each_attempt_is_a_job_of_its_own() -> None:
    ids = ["abc", "ABC", "x" * 128, "0123456789abcdef" * 3 + "01"]
    for scan_id in ids:
        names = [manifest.job_name(scan_id, n) for n in range(1, 11)]
        # The first keeps the name Jobs had before retries: a running one is still found.
        assert names[0] == manifest.job_name(scan_id)
        assert names[1] == manifest.job_name(scan_id) + "-a2"
        assert len(set(names)) == 10
        for name in names:
            assert len(name) <= 63 and name[0].isalnum() and name[-1].isalnum(), name
    # No attempt of one scan takes another scan's name.
    every = [manifest.job_name(i, n) for i in ids for n in range(1, 11)]
    assert len(set(every)) == len(every)


def test_a_retry_job_names_its_attempt_and_continues_the_console() -> None:
    cmd = start()
    job = manifest.build_job(cmd, SIGNED, attempt=2, console_after=17)
    validate(job)
    meta = job["metadata"]
    assert meta["name"] == manifest.job_name(cmd.scan_id, 2)
    assert meta["labels"]["jetscan.io/attempt"] == "2"
    assert job["spec"]["template"]["metadata"]["labels"]["jetscan.io/attempt"] == "2"
    assert env(job)["JETSCAN_ATTEMPT"] == "2"
    assert env(job)["JETSCAN_CONSOLE_AFTER"] == "17"
    [volume] = [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "nats-creds"]
    secret_name = volume["projected"]["sources"][0]["secret"]["name"]
    assert secret_name == manifest.secret_name(cmd.scan_id, 2) == meta["name"] + "-nats"
    secret = manifest.build_secret(cmd, SIGNED, "uid-2", "creds", attempt=2)
    validate(secret)
    assert secret["metadata"]["name"] == secret_name
    assert secret["metadata"]["ownerReferences"][0]["name"] == meta["name"]
    first = manifest.build_job(cmd, SIGNED)
    assert first["metadata"]["labels"]["jetscan.io/attempt"] == "1"
    assert "JETSCAN_ATTEMPT" not in env(first) and "JETSCAN_CONSOLE_AFTER" not in env(first)


def test_label_values() -> None:
    assert manifest.label_value("abc_1.2-3") == "abc_1.2-3"
    assert manifest.label_value("x" * 64).startswith("h-")
    assert manifest.label_value("-a").startswith("h-")


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_resources_are_set_for_every_tool(tool: str) -> None:
    job = manifest.build_job(start(tool=tool), BASE)
    resources = container(job)["resources"]
    assert set(resources) == {"requests", "limits"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_resources_name_only_registered_tools() -> None:
    assert set(manifest.RESOURCES) <= set(TOOLS)
    assert set(manifest.IMAGE_UIDS) <= set(TOOLS)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_each_job_runs_as_its_images_user(tool: str) -> None:
    dockerfile = (
        Path(__file__).resolve().parents[2] / "scanners" / tool / "Dockerfile"
    ).read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    job = manifest.build_job(start(tool=tool), BASE)
    pod = job["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsUser"] == pod["fsGroup"] == int(users[-1])


def test_jobs_verify_nats_over_tls_against_the_secrets_ca() -> None:
    settings = msgspec.structs.replace(
        BASE, nats_url="tls://nats.jetscan.svc:4222", k8s_nats_creds_secret="jetscan-nats-job"
    )
    job = manifest.build_job(start(), settings)
    validate(job)
    assert env(job)["SSL_CERT_FILE"] == "/var/run/secrets/jetscan/nats/ca.crt"
    [secret] = [v["secret"] for v in job["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert {"key": "ca.crt", "path": "ca.crt"} in secret["items"]
    # Plain nats://: no CA asked of the Secret.
    plain = manifest.build_job(start(), msgspec.structs.replace(settings, nats_url=BASE.nats_url))
    assert "SSL_CERT_FILE" not in env(plain)
