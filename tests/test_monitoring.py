"""deploy/monitoring/: the scrape config and the alert rules have the shape Prometheus reads,
and every rule names metrics jetscan exposes; every role's pod is annotated for scraping."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from prometheus_client.registry import REGISTRY

import edge.metrics
import handlers.metrics
from tests.test_deploy import DEPLOY, of_kind

MONITORING = DEPLOY / "monitoring"
_DURATION = re.compile(r"^\d+[smhdw]$")


def exposed() -> set[str]:
    """Every sample name the metric modules define (`_total`, `_bucket`... included)."""
    assert edge.metrics.GRPC_REQUESTS and handlers.metrics.MESSAGES  # both registered
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("jetscan_"):
            names.add(family.name)
            names.update(f"{family.name}{s}" for s in ("_total", "_bucket", "_count", "_sum"))
    return names


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    assert set(doc) == {"groups"}
    [group] = doc["groups"]
    assert group["name"] == "jetscan"
    return list(group["rules"])


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    assert [r["alert"] for r in rules()] == [
        "JetscanScansStuckQueued",
        "JetscanMissedScheduleFires",
        "JetscanParkedMessages",
        "JetscanConsumerLag",
    ]


@pytest.mark.parametrize("rule", rules(), ids=[r["alert"] for r in rules()])
def test_every_rule_is_well_formed_and_names_real_metrics(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
    assert re.fullmatch(r"Jetscan[A-Z]\w+", rule["alert"])
    assert isinstance(rule["expr"], str) and rule["expr"].strip()
    assert rule["expr"].count("(") == rule["expr"].count(")")
    if "for" in rule:
        assert _DURATION.match(rule["for"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
    names = set(re.findall(r"\bjetscan_\w+", rule["expr"]))
    assert names, "a rule about jetscan names a jetscan metric"
    assert names <= exposed(), names - exposed()
    for window in re.findall(r"\[([^\]]+)\]", rule["expr"]):
        assert _DURATION.match(window), window


def test_the_scrape_config_keeps_annotated_pods_on_their_port() -> None:
    doc = yaml.safe_load((MONITORING / "prometheus-scrape.yaml").read_text())
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert set(jobs) == {"jetscan", "jetscan-up"}
    pods = jobs["jetscan"]
    assert pods["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["jetscan"]}}]
    relabel = pods["relabel_configs"]
    assert relabel[0]["action"] == "keep" and relabel[0]["regex"] == "true"
    for r in relabel:
        assert set(r) <= {"source_labels", "regex", "action", "target_label", "replacement"}
        re.compile(r.get("regex", ".*"))
    address = next(r for r in relabel if r.get("target_label") == "__address__")
    joined = "10.0.0.7:8080;8081"
    assert re.sub(f"^{address['regex']}$", "\\1:\\2", joined) == "10.0.0.7:8081"
    assert jobs["jetscan-up"]["static_configs"] == [{"targets": ["127.0.0.1:9464"]}]


def test_every_role_pod_is_annotated_and_its_health_port_open_to_prometheus() -> None:
    for deployment in of_kind("Deployment"):
        template = deployment["spec"]["template"]
        assert template["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "8081",
            "prometheus.io/path": "/metrics",
        }
        [container] = template["spec"]["containers"]
        assert {"name": "health", "containerPort": 8081} in container["ports"]
    [scrape] = [
        p for p in of_kind("NetworkPolicy") if p["metadata"]["name"] == "allow-metrics-scrape"
    ]
    assert scrape["spec"]["podSelector"] == {}
    assert [p["port"] for p in scrape["spec"]["ingress"][0]["ports"]] == [8081]
