"""What the Kubernetes API says about a scan's Job and pods, and what it means. Pure.

The Structs read the subset of batch/v1 Job and core/v1 Pod JSON the executor needs (unknown
fields are ignored, every field defaulted), so the decisions below are table-tested on real
API objects.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from contracts import wire
from contracts.scans import LOST
from handlers.launcher import manifest
from handlers.launcher.executor import Ending
from handlers.launcher.lifecycle import DEADLINE_EXCEEDED, OOM_KILLED

# A container waiting for one of these will not start by itself: the image cannot be pulled,
# or its config (a missing Secret) cannot be built.
NOT_STARTING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
    }
)


class Meta(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    name: str = ""
    namespace: str = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    resource_version: str = ""
    creation_timestamp: datetime | None = None


class Condition(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    status: str
    reason: str = ""
    message: str = ""


class JobSpec(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    active_deadline_seconds: int | None = None


class JobStatus(msgspec.Struct, frozen=True, kw_only=True):
    conditions: list[Condition] | None = None
    active: int | None = None
    ready: int | None = None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    metadata: Meta = Meta()
    spec: JobSpec = JobSpec()
    status: JobStatus = JobStatus()


class Waiting(msgspec.Struct, frozen=True, kw_only=True):
    reason: str = ""
    message: str = ""


class Terminated(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    exit_code: int
    reason: str = ""
    message: str = ""


class ContainerState(msgspec.Struct, frozen=True, kw_only=True):
    waiting: Waiting | None = None
    terminated: Terminated | None = None


class ContainerStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: ContainerState = ContainerState()


class PodStatus(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    phase: str = ""
    reason: str = ""
    message: str = ""
    conditions: list[Condition] | None = None
    container_statuses: list[ContainerStatus] | None = None


class Pod(msgspec.Struct, frozen=True, kw_only=True):
    metadata: Meta = Meta()
    status: PodStatus = PodStatus()


def job(raw: dict[str, Any]) -> Job:
    return msgspec.convert(raw, Job)


def pod(raw: dict[str, Any]) -> Pod:
    return msgspec.convert(raw, Pod)


def scan_id(j: Job) -> str:
    """The scan a Job runs: its annotation (labels may hold only a hash of the id)."""
    return j.metadata.annotations.get(manifest.SCAN_ANNOTATION, "")


def attempt(meta: Meta) -> int:
    """The scan's attempt a Job (or its pod) runs: its label; 1 for Jobs made before it."""
    value = meta.labels.get(manifest.ATTEMPT_LABEL, "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def deadline_seconds(j: Job) -> int:
    """The scan's deadline: its annotation; Jobs made before it existed have only their
    activeDeadlineSeconds, which then was the deadline itself."""
    value = j.metadata.annotations.get(manifest.DEADLINE_ANNOTATION, "")
    return int(value) if value.isdigit() else (j.spec.active_deadline_seconds or 0)


def finished(j: Job) -> Condition | None:
    """The Job's terminal condition (`Complete` or `Failed`), None while it runs."""
    for cond in j.status.conditions or ():
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond
    return None


def started(j: Job) -> bool:
    """Whether the Job's pod is known to run (so it has pulled its image)."""
    return bool(j.status.ready)


def disrupted(p: Pod) -> Condition | None:
    """The pod's `DisruptionTarget` condition: Kubernetes itself ended it (its node was lost or
    shut down, it was evicted by a drain or for node pressure, preempted), not its scanner."""
    for cond in p.status.conditions or ():
        if cond.type == "DisruptionTarget" and cond.status == "True":
            return cond
    return None


def _container(p: Pod) -> ContainerStatus | None:
    for status in p.status.container_statuses or ():
        if status.name == manifest.CONTAINER:
            return status
    return None


def ending(j: Job, pods: list[Pod]) -> Ending | None:
    """How a finished Job ended, from its condition and its pod's scan container; None while
    it runs. With `backoffLimit: 0` there is one pod; if several are left, any terminated one
    tells the exit code. Pods of the scan's other attempts (other Jobs) are not this Job's.

    A failed Job whose pod Kubernetes disrupted (`disrupted`) was lost by the platform,
    whatever its container's exit code: the scan may run again.
    """
    cond = finished(j)
    if cond is None:
        return None
    number = attempt(j.metadata)
    pods = [p for p in pods if attempt(p.metadata) == number]
    base = Ending(scan_id=scan_id(j), deadline_seconds=deadline_seconds(j), attempt=number)
    if cond.type != "Complete" and cond.reason != DEADLINE_EXCEEDED:
        for p in pods:
            if (disruption := disrupted(p)) is not None:
                detail = f"{disruption.reason}: {disruption.message}".strip(": ")
                return msgspec.structs.replace(base, cause=LOST, detail=detail)
    terminated = [
        (p, c.state.terminated)
        for p in pods
        if (c := _container(p)) is not None and c.state.terminated is not None
    ]
    code = terminated[0][1].exit_code if terminated else None
    if cond.type == "Complete":
        return msgspec.structs.replace(base, returncode=0 if code is None else code)
    if cond.reason == DEADLINE_EXCEEDED:
        return msgspec.structs.replace(
            base, returncode=code, cause=DEADLINE_EXCEEDED, detail=cond.message
        )
    if terminated:
        p, state = terminated[0]
        if state.reason == OOM_KILLED:
            return msgspec.structs.replace(
                base, returncode=code, cause=OOM_KILLED, detail=state.message
            )
        # A pod killed from outside (eviction, node drain) still shows the exit code.
        return msgspec.structs.replace(
            base, returncode=code, cause=p.status.reason, detail=p.status.message
        )
    for p in pods:
        if p.status.reason:  # evicted or lost before the container ever ran
            return msgspec.structs.replace(
                base, cause=LOST, detail=f"{p.status.reason}: {p.status.message}".rstrip(": ")
            )
    return msgspec.structs.replace(
        base, cause=LOST, detail=f"the Job failed ({cond.reason}: {cond.message})"
    )


def not_starting(j: Job, pods: list[Pod], now: datetime, wait: timedelta) -> Ending | None:
    """A Job whose container has waited for its image (or its config) longer than `wait`
    since the Job was created, as the scan's ending; None otherwise.

    Counting from the Job's creation (the API server's clock) makes every launcher replica
    come to the same decision.
    """
    created = j.metadata.creation_timestamp
    if finished(j) is not None or started(j) or created is None or now - created < wait:
        return None
    for p in pods:
        if attempt(p.metadata) != attempt(j.metadata):
            continue
        c = _container(p)
        waiting = c.state.waiting if c is not None else None
        if waiting is not None and waiting.reason in NOT_STARTING:
            return Ending(
                scan_id=scan_id(j),
                deadline_seconds=deadline_seconds(j),
                attempt=attempt(j.metadata),
                cause=waiting.reason,
                detail=waiting.message
                or f"the job did not start within {int(wait.total_seconds())}s",
            )
    return None


class ApiStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The `Status` object an API error response carries (`reason` such as `Forbidden`)."""

    code: int = 0
    reason: str = ""
    message: str = ""


def api_status(body: bytes | str | None, code: int | None, phrase: str | None) -> ApiStatus:
    """The error's Status; built from the HTTP code and phrase when the body is not one."""
    try:
        status = msgspec.json.decode(body or b"{}", type=ApiStatus)
    except wire.UNDECODABLE:
        status = ApiStatus()
    return ApiStatus(
        code=status.code or code or 0,
        reason=status.reason or phrase or f"HTTP {code}",
        message=status.message or f"the Kubernetes API answered {code} {phrase or ''}".rstrip(),
    )
