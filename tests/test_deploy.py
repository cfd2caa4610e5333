"""deploy/: every manifest valid against the Kubernetes OpenAPI schema (kubernetes-validate, the
version pinned in tests/kubeschema.py), and wired the way the code expects."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.scans import StartScan
from contracts.settings import ROLES, load
from handlers.launcher import manifest
from tests.conftest import ROOT
from tests.kubeschema import validate

DEPLOY = ROOT / "deploy"
HELM_VALUES = "nats-values.yaml"
KUSTOMIZATION = "kustomization.yaml"
MANIFEST_FILES = sorted(
    p for p in DEPLOY.glob("*.yaml") if p.name not in {HELM_VALUES, KUSTOMIZATION}
)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


DOCS = [(p.name, i, d) for p in MANIFEST_FILES for i, d in enumerate(documents(p))]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, _, d in DOCS if d["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    return doc


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in of_kind("Deployment") + of_kind("Job")
    ]


@pytest.mark.parametrize(
    ("file", "index", "doc"), DOCS, ids=[f"{f}#{i}-{d['kind']}" for f, i, d in DOCS]
)
def test_every_manifest_is_valid_kubernetes(file: str, index: int, doc: dict[str, Any]) -> None:
    validate(doc)


def test_the_kustomization_lists_every_manifest_once() -> None:
    kustomization = yaml.safe_load((DEPLOY / KUSTOMIZATION).read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == [p.name for p in MANIFEST_FILES]
    assert listed[0] == "namespaces.yaml"


def test_the_nats_values_use_the_official_charts_keys() -> None:
    values = yaml.safe_load((DEPLOY / HELM_VALUES).read_text())
    assert set(values) == {"config"}
    config = values["config"]
    assert config["cluster"] == {"enabled": True, "replicas": 3}
    js = config["jetstream"]
    assert js["enabled"] is True
    assert js["fileStore"]["enabled"] is True
    assert js["fileStore"]["pvc"]["enabled"] is True
    assert re.fullmatch(r"\d+Gi", js["fileStore"]["pvc"]["size"])
    assert js["merge"] == {"sync_interval": "always"}
    assert config["merge"] == {"max_payload": "<< 8MB >>"}


def test_every_role_has_a_deployment_that_runs_it() -> None:
    runs = {
        d["spec"]["template"]["spec"]["containers"][0]["args"][1]: d for d in of_kind("Deployment")
    }
    assert set(runs) == set(ROLES)
    for role, deployment in runs.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == role
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize(("name", "spec"), pod_specs(), ids=[n for n, _ in pod_specs()])
def test_every_pod_is_least_privileged_and_probed(name: str, spec: dict[str, Any]) -> None:
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is (name == "jetscan-launcher")
    for c in spec.get("initContainers", []) + spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", c["image"]), c["image"]
        assert {"requests", "limits"} <= set(c["resources"])
    if name.startswith("jetscan-") and name != "jetscan-setup":
        [c] = spec["containers"]
        assert "readinessProbe" in c and "livenessProbe" in c


def test_only_the_database_roles_get_the_database_secret() -> None:
    for name, spec in pod_specs():
        refs = {
            ref["secretRef"]["name"]
            for c in spec.get("initContainers", []) + spec["containers"]
            for ref in c.get("envFrom", [])
            if "secretRef" in ref
        }
        role = name.removeprefix("jetscan-")
        wants = role in {"ingest", "queries", "scheduler", "reports", "setup"}
        assert refs == ({"jetscan-database"} if wants else set()), name


def test_the_configmap_is_valid_jetscan_settings_for_the_kubernetes_executor() -> None:
    data = named("ConfigMap", "jetscan")["data"]
    settings = load(data | {"JETSCAN_DATABASE_URL": "postgresql://jetscan@db/jetscan"})
    assert settings.executor == "kubernetes"
    assert settings.health_addr is not None
    scans = named("Namespace", settings.k8s_namespace)
    labels = scans["metadata"]["labels"]
    # Syn scans (root with NET_RAW) stay off until an operator relaxes the namespace.
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert settings.k8s_raw_sockets is False
    jetscan = named("Namespace", "jetscan")
    assert jetscan["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_launcher_may_do_exactly_what_the_executor_does() -> None:
    data = named("ConfigMap", "jetscan")["data"]
    role = named("Role", "jetscan-launcher")
    assert role["metadata"]["namespace"] == data["JETSCAN_K8S_NAMESPACE"]
    rules = {(r["apiGroups"][0], r["resources"][0]): r["verbs"] for r in role["rules"]}
    assert rules == {
        ("batch", "jobs"): ["create", "get", "list", "watch", "delete"],
        ("", "pods"): ["list"],
        ("", "secrets"): ["create"],
    }
    binding = named("RoleBinding", "jetscan-launcher")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "jetscan-launcher", "namespace": "jetscan"}
    ]
    launcher = named("Deployment", "jetscan-launcher")["spec"]["template"]["spec"]
    assert launcher["serviceAccountName"] == "jetscan-launcher"
    # Each verb says why, on its own line.
    text = (DEPLOY / "rbac.yaml").read_text()
    for verb in ("create", "get", "list", "watch", "delete"):
        assert re.search(rf"^\s+- {verb}\s+# \S", text, re.MULTILINE), verb


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_every_component_has_its_own_network_policy() -> None:
    policies = of_kind("NetworkPolicy")
    specific = [p for p in policies if p["spec"]["podSelector"]]
    pods = [
        (d["metadata"]["namespace"], d["spec"]["template"]["metadata"]["labels"])
        for d in of_kind("Deployment") + of_kind("Job")
    ]
    settings = load(named("ConfigMap", "jetscan")["data"])
    scan = manifest.build_job(
        StartScan(
            scan_id="x",
            target="example.com",
            domain="example.com",
            tool="nmap",
            config={},
            deadline_seconds=60,
            requested_by="t",
            requested_at=datetime(2026, 1, 1, tzinfo=UTC),
        ),
        settings,
    )
    pods.append((settings.k8s_namespace, scan["spec"]["template"]["metadata"]["labels"]))
    pods.append(("jetscan", {"app.kubernetes.io/name": "nats"}))
    for namespace, labels in pods:
        matching = [
            p
            for p in specific
            if p["metadata"]["namespace"] == namespace
            and _selects(p["spec"]["podSelector"], labels)
        ]
        assert len(matching) == 1, (namespace, labels)
    for namespace in ("jetscan", settings.k8s_namespace):
        assert any(
            p["metadata"]["namespace"] == namespace
            and p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            for p in policies
        ), f"no default deny in {namespace}"


def test_scan_jobs_cannot_reach_the_metadata_service() -> None:
    policy = named("NetworkPolicy", "jetscan-scan")
    blocks = [
        peer["ipBlock"]
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    ]
    v4 = next(b for b in blocks if b["cidr"] == "0.0.0.0/0")
    assert "169.254.0.0/16" in v4["except"]
    assert "10.0.0.0/8" in v4["except"]
    assert "ingress" not in policy["spec"]


def test_the_server_image_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run(
        [str(hadolint), "--no-color", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (DEPLOY / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in text
    assert re.search(r"^USER 10001$", text, re.MULTILINE)


def test_only_the_launcher_holds_the_key_that_signs_scan_jobs_users() -> None:
    for name, spec in pod_specs():
        items = [
            item["key"]
            for v in spec.get("volumes", [])
            for item in v.get("secret", {}).get("items", [])
        ]
        env = {e["name"]: e["value"] for c in spec["containers"] for e in c.get("env", [])}
        holds = "job-signer.json" in items
        assert holds is (name == "jetscan-launcher"), name
        if holds:
            assert env["JETSCAN_NATS_JOB_SIGNER"] == "/var/run/jetscan/nats/job-signer.json"
    # The scan Jobs' shared Secret is the CA only: no NATS user in it.
    assert "scan-jobs" not in (DEPLOY / "README.md").read_text()
