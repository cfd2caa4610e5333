"""The batch/v1 Job that runs one scan, as Kubernetes JSON. Pure: a function of the command
and the settings, so every Job jetscan can create is table-tested and schema-validated.

The Job carries the env contract (`contracts.jobs`) as plain env vars and nothing secret: the
NATS credentials come from a Secret mounted as a file, named by `JETSCAN_NATS_CREDS`. With a
jobs signing key (`JETSCAN_NATS_JOB_SIGNER`) that Secret is the Job's own (`build_secret`:
a NATS user for this scan's subjects only, expiring with the Job, owned by the Job so that
Kubernetes deletes it with the Job); without one, every Job mounts the shared
`JETSCAN_K8S_NATS_CREDS_SECRET`. The
container runs as the image's non-root user with a read-only root filesystem; its scratch
space (`JETSCAN_WORKDIR`, `HOME`, `TMPDIR`) is an emptyDir.

Raw-socket scans (nmap `scan_type: syn`) are the one exception to non-root. Kubernetes has no
ambient capabilities, so a capability added to a non-root container never reaches its
effective set; the alternative, a file capability on nmap, makes every exec of nmap fail
wherever NET_RAW is not granted (the restricted profile), connect scans included. So a syn
scan's container runs as uid 0 with every capability dropped except NET_RAW, no privilege
escalation, the same read-only root and seccomp profile. NET_RAW is outside even the
`baseline` Pod Security level's capabilities, so such a Job is admitted only in a namespace at
`privileged`: the executor builds one only with `JETSCAN_K8S_RAW_SOCKETS=true`, which the
operator sets after relabelling the scans namespace (deploy/namespaces.yaml). Every other Job
passes `restricted`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import msgspec

from contracts import VERSION
from contracts.jobs import job_environ
from contracts.scans import StartScan
from contracts.settings import Settings

NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
SCAN_LABEL = "jetscan.io/scan-id"
TOOL_LABEL = "jetscan.io/tool"
# The launch of the scan a Job runs: 1, or more after jetscan lost an earlier one's Job.
# Jobs from before retries have no such label: theirs is the first attempt.
ATTEMPT_LABEL = "jetscan.io/attempt"
# Labels hold at most 63 characters of a restricted alphabet; the annotation holds any id.
SCAN_ANNOTATION = "jetscan.io/scan-id"
# The scan's own deadline: the Job's activeDeadlineSeconds is longer (see `active_deadline`).
DEADLINE_ANNOTATION = "jetscan.io/deadline-seconds"
# After its deadline the job stops the scanner (SIGTERM, SIGKILL 5 s later), parses what
# there is and publishes it as a partial result: time it gets before Kubernetes kills it.
WRAP_UP_SECONDS = 60
SELECTOR = f"{NAME}=jetscan,{COMPONENT}=scan"
CONTAINER = "scan"
SCRATCH = "/scratch"
CREDS_DIR = "/var/run/secrets/jetscan/nats"
CREDS_KEY = "nats.creds"
CA_KEY = "ca.crt"
# The scanner images' user (scanners/*/Dockerfile): 10001, but ZAP's image keeps its own
# user, whose home holds ZAP's configuration and scan policies.
IMAGE_UID = 10001
IMAGE_UIDS: dict[str, int] = {"zap": 1000}
# The job gives its scanner 5 s after SIGTERM to stop and publish its end of output.
GRACE_SECONDS = 30


class Resources(msgspec.Struct, frozen=True, kw_only=True):
    """Kubernetes quantities for one tool's job; `scratch` bounds the emptyDir."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str
    scratch: str


# Measured needs with headroom; a tool not listed gets DEFAULT_RESOURCES.
RESOURCES: dict[str, Resources] = {
    # A connect scan of a /24 stays under 100 MiB; -sV and NSE scripts take more. The job
    # spools a result to scratch (workers/spool.py: about four times the XML on disk, ~46 MB
    # of memory for a 100 MB XML), so scratch, not memory, bounds the largest scan: ~250 MB.
    "nmap": Resources(
        cpu_request="100m",
        memory_request="128Mi",
        cpu_limit="1",
        memory_limit="512Mi",
        scratch="1Gi",
    ),
    # Python plus nassl; ROBOT and the cipher-suite checks are the CPU-heavy part.
    "sslyze": Resources(
        cpu_request="100m",
        memory_request="128Mi",
        cpu_limit="1",
        memory_limit="512Mi",
        scratch="64Mi",
    ),
    # A JVM (ZAP's default heap is a quarter of the limit) plus Firefox for the AJAX spider.
    "zap": Resources(
        cpu_request="500m",
        memory_request="2Gi",
        cpu_limit="2",
        memory_limit="4Gi",
        scratch="2Gi",
    ),
    # subfinder and dnsx (Go) with the recon runner; the transcript grows with the names found.
    "dns": Resources(
        cpu_request="100m",
        memory_request="128Mi",
        cpu_limit="1",
        memory_limit="512Mi",
        scratch="512Mi",
    ),
}
DEFAULT_RESOURCES = Resources(
    cpu_request="250m", memory_request="256Mi", cpu_limit="1", memory_limit="1Gi", scratch="1Gi"
)

_NAME_SAFE = re.compile(r"[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?")
_LABEL_SAFE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")


def _digest(scan_id: str) -> str:
    return hashlib.sha256(scan_id.encode()).hexdigest()[:12]


def job_name(scan_id: str, attempt: int = 1) -> str:
    """`scan-<id>` when the id is already a short DNS label, else a readable prefix and a hash;
    `-a<n>` after it for the scan's attempt n > 1 (each attempt is a Job of its own).

    At most 63 characters (attempts up to 99), so the `job-name` label Kubernetes puts on the
    pod stays valid; one name per id and attempt (an id that is not used as is always gets the
    hash).
    """
    if _NAME_SAFE.fullmatch(scan_id):
        base = f"scan-{scan_id}"
    else:
        readable = re.sub(r"[^a-z0-9-]+", "-", scan_id.lower()).strip("-")[:40].strip("-")
        base = f"scan-{readable}-{_digest(scan_id)}" if readable else f"scan-{_digest(scan_id)}"
    return base if attempt <= 1 else f"{base}-a{attempt}"


def label_value(text: str) -> str:
    """`text` if it is a valid label value, else a stable hash of it."""
    return text if _LABEL_SAFE.fullmatch(text) else f"h-{_digest(text)}"


def image(tool: str, images: dict[str, str]) -> str:
    """The tool's image: as configured, else jetscan's published image of this version."""
    return images.get(tool) or f"ghcr.io/jetscan/jetscan-{tool}:{VERSION}"


def raw_sockets(cmd: StartScan) -> bool:
    """Whether the job sends raw packets and so needs CAP_NET_RAW: only nmap's syn scans."""
    return cmd.tool == "nmap" and cmd.config.get("scan_type") == "syn"


def labels(cmd: StartScan, attempt: int = 1) -> dict[str, str]:
    return {
        NAME: "jetscan",
        COMPONENT: "scan",
        SCAN_LABEL: label_value(cmd.scan_id),
        TOOL_LABEL: label_value(cmd.tool),
        ATTEMPT_LABEL: str(attempt),
    }


def secret_name(scan_id: str, attempt: int = 1) -> str:
    """The name of the Secret holding the NATS user of one attempt's Job."""
    return f"{job_name(scan_id, attempt)}-nats"


def creds_lifetime(settings: Settings, cmd: StartScan) -> int:
    """How long a Job's own NATS user works: as long as Kubernetes lets the Job run."""
    return active_deadline(settings, cmd.deadline_seconds) + GRACE_SECONDS


def build_secret(
    cmd: StartScan, settings: Settings, job_uid: str, creds: str, *, attempt: int = 1
) -> dict[str, Any]:
    """The Secret of `cmd`'s Job (uid `job_uid`, the scan's `attempt`): its `.creds`, owned by
    the Job.

    The owner reference does not block the Job's deletion (`blockOwnerDeletion` would need
    the launcher to be allowed to update Jobs' finalizers); the garbage collector deletes the
    Secret once the Job is gone, whoever deleted it (`ttlSecondsAfterFinished` included).
    """
    data = {CREDS_KEY: base64.b64encode(creds.encode()).decode()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(cmd.scan_id, attempt),
            "namespace": settings.k8s_namespace,
            "labels": labels(cmd, attempt),
            "annotations": {SCAN_ANNOTATION: cmd.scan_id},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name(cmd.scan_id, attempt),
                    "uid": job_uid,
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "type": "Opaque",
        "immutable": True,
        "data": data,
    }


def _creds_volume(
    cmd: StartScan, settings: Settings, tls: bool, attempt: int
) -> dict[str, Any] | None:
    """The volume of the job's NATS user (and the CA that signed NATS's certificate)."""
    ca = [{"key": CA_KEY, "path": CA_KEY}] if tls else []
    if settings.nats_job_signer:
        sources: list[dict[str, Any]] = [
            {
                "secret": {
                    "name": secret_name(cmd.scan_id, attempt),
                    "items": [{"key": CREDS_KEY, "path": CREDS_KEY}],
                }
            }
        ]
        if ca and settings.k8s_nats_creds_secret:
            sources.append({"secret": {"name": settings.k8s_nats_creds_secret, "items": ca}})
        return {"name": "nats-creds", "projected": {"sources": sources, "defaultMode": 0o440}}
    if settings.k8s_nats_creds_secret:
        return {
            "name": "nats-creds",
            "secret": {
                "secretName": settings.k8s_nats_creds_secret,
                "items": [{"key": CREDS_KEY, "path": CREDS_KEY}, *ca],
                "defaultMode": 0o440,
            },
        }
    return None


def pod_selector(scan_id: str) -> str:
    """The label selector of one scan's Jobs (each attempt's) and their pods."""
    return f"{SELECTOR},{SCAN_LABEL}={label_value(scan_id)}"


def active_deadline(settings: Settings, deadline_seconds: int) -> int:
    """The Job's `activeDeadlineSeconds`: a backstop past the scan's own deadline.

    Kubernetes counts it from the Job's start, image pull included, while the job's own timer
    starts with the container. Were they equal, a slow pull would let Kubernetes kill a job
    that is still inside its deadline, and a job at its deadline would be killed while
    publishing its partial result. The job enforces the deadline itself; this only ends a
    job that stopped responding (whose scan liveness fails anyway).
    """
    return deadline_seconds + int(settings.k8s_image_pull_wait) + WRAP_UP_SECONDS


def build_job(
    cmd: StartScan,
    settings: Settings,
    *,
    traceparent: str = "",
    attempt: int = 1,
    console_after: int = 0,
) -> dict[str, Any]:
    """The Job for `cmd` in the settings' namespace, ready to POST; `traceparent` is the
    launch's span (tracing on). `attempt` > 1 is a new launch after jetscan lost the Job of an
    earlier one, whose console continues after line `console_after`."""
    tls = settings.nats_url.startswith("tls://") and bool(settings.k8s_nats_creds_secret)
    creds_volume = _creds_volume(cmd, settings, tls, attempt)
    creds = f"{CREDS_DIR}/{CREDS_KEY}" if creds_volume else ""
    environ = job_environ(
        cmd,
        settings.nats_url,
        nats_creds=creds,
        workdir=SCRATCH,
        scope=settings.scope,
        console_max_bytes=settings.console_max_bytes,
        traceparent=traceparent,
        otlp_endpoint=settings.otlp_endpoint,
        log_format=settings.log_format,
        attempt=attempt,
        console_after=console_after,
    )
    # Tools that keep state under HOME or TMPDIR (ZAP, Python) need it writable.
    environ |= {"HOME": SCRATCH, "TMPDIR": SCRATCH}
    # NATS over TLS: the job verifies it against the CA (`ca.crt` of the shared Secret).
    if tls and creds_volume:
        environ["SSL_CERT_FILE"] = f"{CREDS_DIR}/{CA_KEY}"
    res = RESOURCES.get(cmd.tool, DEFAULT_RESOURCES)
    raw = raw_sockets(cmd)
    image_uid = IMAGE_UIDS.get(cmd.tool, IMAGE_UID)
    uid = 0 if raw else image_uid
    volumes: list[dict[str, Any]] = [
        {"name": "scratch", "emptyDir": {"sizeLimit": res.scratch}},
    ]
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": SCRATCH}]
    if creds_volume:
        volumes.append(creds_volume)
        mounts.append({"name": "nats-creds", "mountPath": CREDS_DIR, "readOnly": True})
    job_labels = labels(cmd, attempt)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(cmd.scan_id, attempt),
            "namespace": settings.k8s_namespace,
            "labels": job_labels,
            "annotations": {
                SCAN_ANNOTATION: cmd.scan_id,
                DEADLINE_ANNOTATION: str(cmd.deadline_seconds),
            },
        },
        "spec": {
            # One pod: a lost Job is retried by the launcher, as a new Job (`job_name`).
            "backoffLimit": 0,
            "activeDeadlineSeconds": active_deadline(settings, cmd.deadline_seconds),
            "ttlSecondsAfterFinished": settings.k8s_job_ttl_seconds,
            "template": {
                "metadata": {"labels": job_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    # No service-link variables: the job's environment is the contract only.
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "securityContext": {
                        "runAsNonRoot": not raw,
                        "runAsUser": uid,
                        "runAsGroup": uid,
                        "fsGroup": image_uid,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumes": volumes,
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": image(cmd.tool, settings.k8s_images),
                            "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": k, "value": v} for k, v in sorted(environ.items())],
                            "resources": {
                                "requests": {
                                    "cpu": res.cpu_request,
                                    "memory": res.memory_request,
                                },
                                "limits": {"cpu": res.cpu_limit, "memory": res.memory_limit},
                            },
                            "volumeMounts": mounts,
                            "securityContext": {
                                "runAsNonRoot": not raw,
                                "runAsUser": uid,
                                "allowPrivilegeEscalation": False,
                                "privileged": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {
                                    "drop": ["ALL"],
                                    **({"add": ["NET_RAW"]} if raw else {}),
                                },
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                        }
                    ],
                },
            },
        },
    }
