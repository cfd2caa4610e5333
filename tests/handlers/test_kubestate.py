"""What a Job and its pod say about a scan's end, on Job and Pod JSON as the API serves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.scans import ScanStatus
from handlers.launcher import kubestate
from handlers.launcher.lifecycle import infrastructure_loss, outcome

SCAN = "0123456789abcdef0123456789abcdef"
CREATED = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def job_json(*conditions: tuple[str, str, str], ready: int | None = 0) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": "2026-06-01T12:00:01Z", "active": 0 if conditions else 1}
    if ready is not None:
        status["ready"] = ready
    if conditions:
        status["conditions"] = [
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastProbeTime": "2026-06-01T12:10:00Z",
                "lastTransitionTime": "2026-06-01T12:10:00Z",
            }
            for kind, reason, message in conditions
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"scan-{SCAN}",
            "namespace": "scans",
            "uid": "7c1e0d4e-2f43-4a9b-9d0c-2a3c2b6c1f00",
            "resourceVersion": "48213",
            "generation": 1,
            "creationTimestamp": "2026-06-01T12:00:00Z",
            "labels": {
                "app.kubernetes.io/name": "jetscan",
                "app.kubernetes.io/component": "scan",
                "jetscan.io/scan-id": SCAN,
                "jetscan.io/tool": "nmap",
            },
            "annotations": {"jetscan.io/scan-id": SCAN},
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "activeDeadlineSeconds": 600,
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "completionMode": "NonIndexed",
            "suspend": False,
            "template": {"metadata": {}, "spec": {"containers": []}},
        },
        "status": status,
    }


def pod_json(state: dict[str, Any], phase: str = "Failed", **status: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"scan-{SCAN}-x7k2p",
            "namespace": "scans",
            "labels": {"jetscan.io/scan-id": SCAN, "job-name": f"scan-{SCAN}"},
        },
        "status": {
            "phase": phase,
            **status,
            "containerStatuses": [
                {
                    "name": "scan",
                    "image": "ghcr.io/jetscan/jetscan-nmap:0.1.0",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": state,
                }
            ],
        },
    }


def terminated(code: int, reason: str, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": code,
        "reason": reason,
        "startedAt": "2026-06-01T12:00:05Z",
        "finishedAt": "2026-06-01T12:09:00Z",
    }
    if message:
        state["message"] = message
    return {"terminated": state}


COMPLETE = ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")


@pytest.mark.parametrize(
    ("case", "job", "pods", "status", "reason"),
    [
        ("success", job_json(COMPLETE), [terminated(0, "Completed")], ScanStatus.SUCCEEDED, ""),
        ("success, pod gone", job_json(COMPLETE), [], ScanStatus.SUCCEEDED, ""),
        (
            "scanner failed",
            job_json(BACKOFF),
            [terminated(3, "Error")],
            ScanStatus.FAILED,
            "the scanner failed",
        ),
        (
            "deadline",
            job_json(("FailureTarget", *DEADLINE[1:]), DEADLINE),
            [],
            ScanStatus.TIMED_OUT,
            "deadline of 600s passed (DeadlineExceeded)",
        ),
        (
            "deadline, pod still terminating",
            job_json(DEADLINE),
            [terminated(143, "Error")],
            ScanStatus.TIMED_OUT,
            "deadline of 600s passed (DeadlineExceeded)",
        ),
        (
            "out of memory",
            job_json(BACKOFF),
            [terminated(137, "OOMKilled")],
            ScanStatus.FAILED,
            "OOMKilled: the job ran out of memory",
        ),
        (
            "evicted while running",
            job_json(BACKOFF),
            [terminated(137, "Error")],
            ScanStatus.FAILED,
            "lost: the job was killed by signal 9 SIGKILL",
        ),
        (
            "evicted before running",
            job_json(BACKOFF),
            [
                {
                    **pod_json({"waiting": {"reason": "ContainerCreating"}}),
                    "status": {
                        "phase": "Failed",
                        "reason": "Evicted",
                        "message": "The node was low on resource: memory.",
                    },
                }
            ],
            ScanStatus.FAILED,
            "lost: Evicted: The node was low on resource: memory.",
        ),
        (
            "failed, pod gone",
            job_json(BACKOFF),
            [],
            ScanStatus.FAILED,
            "lost: the Job failed (BackoffLimitExceeded: Job has reached the specified backoff"
            " limit)",
        ),
    ],
)
def test_ending_of_a_finished_job(
    case: str, job: dict[str, Any], pods: list[dict[str, Any]], status: ScanStatus, reason: str
) -> None:
    pod_objects = [kubestate.pod(p if "apiVersion" in p else pod_json(p)) for p in pods]
    ending = kubestate.ending(kubestate.job(job), pod_objects)
    assert ending is not None
    assert ending.scan_id == SCAN
    assert ending.deadline_seconds == 600
    got = outcome(
        ending.returncode,
        ending.stopped,
        ending.deadline_seconds,
        cause=ending.cause,
        detail=ending.detail,
    )
    assert got[0] == status
    assert got[1].startswith(reason)


DISRUPTED = {
    "type": "DisruptionTarget",
    "status": "True",
    "reason": "DeletionByPodGC",
    "message": "PodGC: node no longer exists",
    "lastTransitionTime": "2026-06-01T12:09:00Z",
}


@pytest.mark.parametrize(
    ("case", "state"),
    [
        ("node gone, container never reported", {"running": {"startedAt": "2026-06-01T12:00:05Z"}}),
        ("drained: SIGTERM, exit 143", terminated(143, "Error")),
        ("killed: exit 137", terminated(137, "Error")),
        ("the scanner's own code", terminated(3, "Error")),
    ],
)
def test_a_pod_kubernetes_disrupted_was_lost_whatever_its_exit(
    case: str, state: dict[str, Any]
) -> None:
    pod = pod_json(state)
    pod["status"]["conditions"] = [DISRUPTED]
    ending = kubestate.ending(kubestate.job(job_json(BACKOFF)), [kubestate.pod(pod)])
    assert ending is not None
    assert (ending.cause, ending.detail) == (
        "lost",
        "DeletionByPodGC: PodGC: node no longer exists",
    )
    assert infrastructure_loss(ending.returncode, ending.stopped, cause=ending.cause)
    status, reason = outcome(
        ending.returncode, ending.stopped, 600, cause=ending.cause, detail=ending.detail
    )
    assert (status, reason) == (
        ScanStatus.FAILED,
        "lost: DeletionByPodGC: PodGC: node no longer exists",
    )


def test_a_disruption_does_not_turn_a_success_or_a_deadline_into_a_loss() -> None:
    pod = pod_json(terminated(0, "Completed"), phase="Succeeded")
    pod["status"]["conditions"] = [DISRUPTED]
    done = kubestate.ending(kubestate.job(job_json(COMPLETE)), [kubestate.pod(pod)])
    assert done is not None and (done.returncode, done.cause) == (0, "")
    late = kubestate.ending(kubestate.job(job_json(DEADLINE)), [kubestate.pod(pod)])
    assert late is not None and late.cause == "DeadlineExceeded"


def test_an_ending_names_its_attempt_and_reads_only_that_attempts_pods() -> None:
    job = job_json(BACKOFF)
    # A Job made before retries has no attempt label: the first.
    first = kubestate.ending(kubestate.job(job), [])
    assert first is not None and first.attempt == 1
    job["metadata"]["name"] = f"scan-{SCAN}-a2"
    job["metadata"]["labels"]["jetscan.io/attempt"] = "2"
    old = pod_json(terminated(3, "Error"))
    old["metadata"]["labels"]["jetscan.io/attempt"] = "1"
    new = pod_json(terminated(137, "Error"))
    new["metadata"]["labels"]["jetscan.io/attempt"] = "2"
    ending = kubestate.ending(kubestate.job(job), [kubestate.pod(old), kubestate.pod(new)])
    assert ending is not None
    assert (ending.attempt, ending.returncode) == (2, 137)
    # Only the first attempt's pod: this Job's own pod is gone, its code unknown.
    alone = kubestate.ending(kubestate.job(job), [kubestate.pod(old)])
    assert alone is not None and (alone.attempt, alone.returncode) == (2, None)


def test_the_deadline_is_the_annotations_not_the_jobs_backstop() -> None:
    raw = job_json(COMPLETE)
    raw["metadata"]["annotations"]["jetscan.io/deadline-seconds"] = "300"
    raw["spec"]["activeDeadlineSeconds"] = 660
    assert kubestate.deadline_seconds(kubestate.job(raw)) == 300
    # A Job made before the annotation existed had the deadline itself as its backstop.
    assert kubestate.deadline_seconds(kubestate.job(job_json(COMPLETE))) == 600


def test_exit_code_comes_from_the_pod() -> None:
    ending = kubestate.ending(
        kubestate.job(job_json(BACKOFF)), [kubestate.pod(pod_json(terminated(4, "Error")))]
    )
    assert ending is not None and ending.returncode == 4


@pytest.mark.parametrize(
    "job",
    [
        job_json(),
        job_json(("FailureTarget", *DEADLINE[1:])),
        job_json(("SuccessCriteriaMet", *COMPLETE[1:])),
        job_json(("Complete", "CompletionsReached", "")) | {"status": {"conditions": []}},
    ],
)
def test_a_running_job_has_no_ending(job: dict[str, Any]) -> None:
    assert kubestate.ending(kubestate.job(job), []) is None


PULL_WAIT = timedelta(seconds=300)
BACKOFF_POD = pod_json(
    {
        "waiting": {
            "reason": "ImagePullBackOff",
            "message": 'Back-off pulling image "registry.example/jetscan-nmap:9"',
        }
    },
    phase="Pending",
)


@pytest.mark.parametrize(
    ("case", "job", "pod", "after", "cause"),
    [
        ("pull backoff past the wait", job_json(), BACKOFF_POD, 301, "ImagePullBackOff"),
        ("pull backoff within the wait", job_json(), BACKOFF_POD, 299, None),
        (
            "missing secret",
            job_json(),
            pod_json(
                {
                    "waiting": {
                        "reason": "CreateContainerConfigError",
                        "message": 'secret "jetscan-nats-job" not found',
                    }
                },
                phase="Pending",
            ),
            400,
            "CreateContainerConfigError",
        ),
        (
            "still creating",
            job_json(),
            pod_json({"waiting": {"reason": "ContainerCreating"}}, phase="Pending"),
            400,
            None,
        ),
        ("ready", job_json(ready=1), BACKOFF_POD, 400, None),
        ("finished", job_json(BACKOFF), BACKOFF_POD, 400, None),
    ],
)
def test_a_job_that_cannot_start(
    case: str, job: dict[str, Any], pod: dict[str, Any], after: int, cause: str | None
) -> None:
    now = CREATED + timedelta(seconds=after)
    ending = kubestate.not_starting(kubestate.job(job), [kubestate.pod(pod)], now, PULL_WAIT)
    if cause is None:
        assert ending is None
        return
    assert ending is not None
    assert ending.cause == cause
    status, reason = outcome(None, None, 600, cause=ending.cause, detail=ending.detail)
    assert status == ScanStatus.FAILED
    assert reason.startswith(f"{cause}: ")


@pytest.mark.parametrize(
    ("body", "code", "phrase", "reason", "message"),
    [
        (
            b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
            b'"jobs.batch is forbidden: User \\"x\\" cannot create resource","reason":"Forbidden",'
            b'"details":{"group":"batch","kind":"jobs"},"code":403}',
            403,
            "Forbidden",
            "Forbidden",
            'jobs.batch is forbidden: User "x" cannot create resource',
        ),
        (b"<html>bad gateway</html>", 502, "Bad Gateway", "Bad Gateway", "the Kubernetes API"),
        (None, 401, None, "HTTP 401", "the Kubernetes API answered 401"),
    ],
)
def test_api_status(
    body: bytes | None, code: int, phrase: str | None, reason: str, message: str
) -> None:
    status = kubestate.api_status(body, code, phrase)
    assert status.code == code
    assert status.reason == reason
    assert status.message.startswith(message)
