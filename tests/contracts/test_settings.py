from __future__ import annotations

from pathlib import Path

import pytest

from contracts.settings import Address, SettingsError, load


def test_defaults() -> None:
    s = load({}, cwd=Path("/srv"))
    assert s.home == Path("/srv/.jetscan")
    assert s.grpc_addr == Address("127.0.0.1", 50051)
    assert s.http_addr == Address("127.0.0.1", 8080)
    assert s.embedded_nats and s.embedded_database
    assert s.scope == "localhost,127.0.0.0/8"
    assert s.executor == "local"
    assert s.portal_idle_minutes == 30


def test_portal_idle_minutes_are_read() -> None:
    assert load({"JETSCAN_PORTAL_IDLE_MINUTES": "5"}).portal_idle_minutes == 5


def test_values_are_read_and_ipv6_addresses_parse() -> None:
    s = load(
        {
            "JETSCAN_GRPC_ADDR": "[::1]:6000",
            "JETSCAN_NATS_URL": "nats://127.0.0.1:4222",
            "JETSCAN_DATABASE_URL": "postgresql://u:secret@127.0.0.1/db",
            "JETSCAN_EXECUTOR": "kubernetes",
            "JETSCAN_HOME": "/var/lib/jetscan",
            "OTHER": "ignored",
        }
    )
    assert s.grpc_addr == Address("::1", 6000)
    assert str(s.grpc_addr) == "[::1]:6000"
    assert not s.embedded_nats and not s.embedded_database
    assert s.executor == "kubernetes"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JETSCAN_GRPC_ADDR", "nonsense"),
        ("JETSCAN_GRPC_ADDR", "127.0.0.1:99999"),
        ("JETSCAN_HTTP_ADDR", ":80"),
        ("JETSCAN_HTTP_ADDR", "[zz::1]:80"),
        ("JETSCAN_NATS_URL", "http://x"),
        ("JETSCAN_DATABASE_URL", "mysql://x"),
        ("JETSCAN_NATS_PORT", "-1"),
        ("JETSCAN_EXECUTOR", "docker"),
        ("JETSCAN_LOG_LEVEL", "loud"),
        ("JETSCAN_PROGRAMS", "zap.sh"),
        ("JETSCAN_PROGRAMS", "zap.sh=relative/zap.sh"),
        ("JETSCAN_HEALTH_ADDR", "8081"),
        ("JETSCAN_K8S_NAMESPACE", "Scans"),
        ("JETSCAN_K8S_NAMESPACE", "a" * 64),
        ("JETSCAN_K8S_IMAGES", "nmap"),
        ("JETSCAN_K8S_IMAGES", "nmap=Registry/UPPER:1"),
        ("JETSCAN_K8S_IMAGES", "nmap=registry/x:1 --privileged"),
        ("JETSCAN_K8S_NATS_CREDS_SECRET", "nats_creds"),
        ("JETSCAN_K8S_KUBECONFIG", "kubeconfig"),
        ("JETSCAN_K8S_JOB_TTL_SECONDS", "59"),
        ("JETSCAN_K8S_JOB_TTL_SECONDS", "1h"),
        ("JETSCAN_K8S_IMAGE_PULL_WAIT", "0"),
        ("JETSCAN_K8S_RAW_SOCKETS", "yes"),
        ("JETSCAN_CONSOLE_MAX_BYTES", "65535"),
        ("JETSCAN_CONSOLE_MAX_BYTES", "1G"),
        ("JETSCAN_PORTAL_IDLE_MINUTES", "0"),
        ("JETSCAN_PORTAL_IDLE_MINUTES", "721"),
        ("JETSCAN_PORTAL_IDLE_MINUTES", "1.5"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load({variable: value})
    assert err.value.variable == variable
    assert str(err.value).startswith(variable + ": ")


def test_programs_are_read_by_name() -> None:
    settings = load({"JETSCAN_PROGRAMS": " zap.sh=/opt/zap/zap.sh, dnsx=/usr/bin/dnsx ,"})
    assert settings.programs == {"zap.sh": "/opt/zap/zap.sh", "dnsx": "/usr/bin/dnsx"}
    assert load({}).programs == {}


def test_secrets_are_redacted_in_repr() -> None:
    s = load({"JETSCAN_DATABASE_URL": "postgresql://u:hunter2@h/db", "JETSCAN_TOKEN": "jst_abc"})
    assert "hunter2" not in repr(s)
    assert "jst_abc" not in repr(s)
    assert "database_url='***'" in repr(s)


def test_kubernetes_settings_are_read() -> None:
    s = load(
        {
            "JETSCAN_EXECUTOR": "kubernetes",
            "JETSCAN_K8S_NAMESPACE": "jetscan-scans",
            "JETSCAN_K8S_IMAGES": "nmap=registry.example:5000/jetscan-nmap:0.1.0,"
            f" zap=ghcr.io/x/zap@sha256:{'a' * 64}",
            "JETSCAN_K8S_NATS_CREDS_SECRET": "jetscan-nats-job",
            "JETSCAN_K8S_KUBECONFIG": "/etc/jetscan/kubeconfig",
            "JETSCAN_K8S_JOB_TTL_SECONDS": "600",
            "JETSCAN_K8S_IMAGE_PULL_WAIT": "90",
            "JETSCAN_K8S_RAW_SOCKETS": "True",
            "JETSCAN_HEALTH_ADDR": "[::1]:8081",
        }
    )
    assert s.k8s_namespace == "jetscan-scans"
    assert s.k8s_images == {
        "nmap": "registry.example:5000/jetscan-nmap:0.1.0",
        "zap": "ghcr.io/x/zap@sha256:" + "a" * 64,
    }
    assert s.k8s_nats_creds_secret == "jetscan-nats-job"
    assert s.k8s_kubeconfig == "/etc/jetscan/kubeconfig"
    assert s.k8s_job_ttl_seconds == 600
    assert s.k8s_image_pull_wait == 90.0
    assert s.k8s_raw_sockets is True
    assert s.health_addr == Address("::1", 8081)


def test_kubernetes_defaults() -> None:
    s = load({})
    assert s.k8s_namespace == "jetscan"
    assert s.k8s_images == {}
    assert s.k8s_nats_creds_secret == ""
    assert s.k8s_kubeconfig == ""
    assert s.k8s_job_ttl_seconds == 3600
    assert s.k8s_image_pull_wait == 300.0
    assert s.k8s_raw_sockets is False
    assert s.health_addr is None
