"""The Kubernetes executor: one batch/v1 Job per scan, through kubernetes-asyncio.

The calls themselves are in `kubeapi` (the library is untyped; it stays fenced in it, here
and in `kubereconcile`). What a Job is and what its state means are pure (`manifest`,
`kubestate`).

- **Start** creates the Job. 409 AlreadyExists is success once the existing Job is read and
  names the same scan (its name is derived from the scan id): an earlier delivery of the
  same command created it.
  401/403 and other refusals fail the scan with the API's reason; 5xx, 429 and connection
  errors raise `LaunchUnavailable`, which the launcher turns into a nak with backoff.
- **Credentials**: with the jobs signing key, each Job gets its own NATS user (valid for its
  scan's subjects until the Job's own deadline plus grace) in a Secret created right after the
  Job, owned by it (the garbage collector deletes it with the Job); the pod waits for it as
  for any missing Secret. A refused Secret deletes the Job and fails the scan.
- **Watch**: list the scan Jobs by label, then watch from the list's resourceVersion; a
  watch that ends is resumed from the last version seen; 410 Gone (the version was
  compacted away) or any error means listing again. A Job seen with a `Complete` or
  `Failed` condition is reported once: its pod's scan container tells the exit code and
  reason (OOMKilled); `DeadlineExceeded` on the Job is a timeout.
- **Not starting**: a Job whose pod still waits for its image (or a missing Secret) this long
  after its creation is deleted and the scan failed with the kubelet's reason. The launcher
  may not watch pods, so pods are listed, once for all such Jobs, every `check_every`.
- **Stop** deletes the Job with `propagationPolicy=Background`, so its pod goes too (the API's
  default for Jobs orphans the pod), and reports the stop at once: a deleted Job says nothing
  more. Jobs outlive the launcher; a new launcher finds them by listing.
- **Reconcile** on start (`kubereconcile`): a RUNNING scan with no Job for its attempt was
  lost; a scan Job whose scan nobody knows is deleted.
- **Attempts**: a scan whose Job jetscan lost (its node died, the Job vanished while no
  launcher watched) runs again as a new Job, `<name>-a<n>` with the label
  `jetscan.io/attempt: n` (`manifest.job_name`); each Job reports the attempt it ran, so a
  replica or a restarted launcher that never started it tells the same attempt. A pod that
  Kubernetes disrupted (its `DisruptionTarget` condition) is such a loss.

Several launcher replicas each watch every Job and report the same endings, computed from the
same API objects; the launcher's events carry a `Nats-Msg-Id` per (scan, status), so JetStream
keeps one. A Job deleted by something other than this launcher is not reported here: its
scan stops sending heartbeats, and ingest's liveness fails it as lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.exceptions import ApiException

from contracts import tracing
from contracts.scans import StartScan
from contracts.settings import Settings
from handlers.launcher import jobcreds, kubereconcile, kubestate, manifest
from handlers.launcher.catalog import Catalog
from handlers.launcher.executor import Ending, LaunchRefused, LaunchUnavailable, OnExit
from handlers.launcher.kubeapi import (
    MAX_BACKOFF,
    NETWORK_ERRORS,
    JobApi,
    WatchBroken,
    refusal,
    transient,
)
from handlers.launcher.lifecycle import Stop
from handlers.natsauth import Signer

log = logging.getLogger(__name__)


class KubernetesExecutor:
    def __init__(
        self,
        settings: Settings,
        on_exit: OnExit,
        catalog: Catalog | None,
        *,
        check_every: float = 10.0,
        watch_seconds: int = 300,
        request_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.namespace = settings.k8s_namespace
        self.on_exit = on_exit
        self.catalog = catalog
        self.check_every = check_every
        self.watch_seconds = watch_seconds
        self.request_timeout = request_timeout
        self.pull_wait = timedelta(seconds=settings.k8s_image_pull_wait)
        # Each Job's own NATS user is signed here; without the key Jobs share a Secret.
        self.signer = Signer.load(settings.nats_job_signer) if settings.nats_job_signer else None
        # Scan Jobs by name, as last listed or watched.
        self.jobs: dict[str, kubestate.Job] = {}
        # Jobs whose end this launcher has reported (or caused): never reported twice.
        self._ended: set[str] = set()
        # Jobs this launcher created and the watch has not shown yet.
        self._created: set[str] = set()
        # The latest attempt of each scan whose Job was created here or seen.
        self._attempts: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.api = JobApi(self.namespace, request_timeout)

    async def open(self) -> None:
        await self.api.open(self.settings.k8s_kubeconfig)
        self._spawn(self._watch(), "watch")
        self._spawn(self._check_pods(), "pod check")
        if self.catalog is not None:
            reconciling = kubereconcile.reconcile(self.api, self.catalog, self.on_exit, self._ended)
            self._spawn(reconciling, "reconcile")

    def _name(self, scan_id: str) -> str:
        """The name of the scan's latest Job known here."""
        return manifest.job_name(scan_id, self._attempts.get(scan_id, 1))

    def running(self, scan_id: str) -> bool:
        name = self._name(scan_id)
        job = self.jobs.get(name)
        if job is None:
            return name in self._created
        return name not in self._ended and kubestate.finished(job) is None

    async def start(self, cmd: StartScan, *, attempt: int = 1, console_after: int = 0) -> None:
        if manifest.raw_sockets(cmd) and not self.settings.k8s_raw_sockets:
            # Admission would refuse its pod and leave the Job waiting out its deadline.
            raise LaunchRefused(
                "RawSocketsDisabled",
                "this scan needs raw sockets (root with NET_RAW), which this deployment does"
                " not allow: set JETSCAN_K8S_RAW_SOCKETS=true once the scans namespace admits"
                " Pod Security level privileged",
            )
        body = manifest.build_job(
            cmd,
            self.settings,
            traceparent=tracing.traceparent(),
            attempt=attempt,
            console_after=console_after,
        )
        name = body["metadata"]["name"]
        try:
            uid = await self.api.create_job(body)
            log.info("scan %s: created Job %s/%s", cmd.scan_id, self.namespace, name)
        except ApiException as exc:
            if exc.status == 409:
                found = await self.api.exists_for(cmd.scan_id, name)
                if found is None:
                    return
                uid = found
            elif transient(exc):
                raise LaunchUnavailable(f"the Kubernetes API answered {exc.status}") from exc
            else:
                raise refusal(exc) from exc
        except NETWORK_ERRORS as exc:
            raise LaunchUnavailable(f"the Kubernetes API is unreachable: {exc!r}") from exc
        self._attempts[cmd.scan_id] = max(self._attempts.get(cmd.scan_id, 1), attempt)
        if self.signer is not None:
            await self._job_secret(cmd, self.signer, name, uid, attempt)
        self._created.add(name)

    async def _job_secret(
        self, cmd: StartScan, signer: Signer, name: str, uid: str, attempt: int
    ) -> None:
        """The Job's own NATS user, in a Secret the Job owns; its pod waits for it to exist."""
        lifetime = manifest.creds_lifetime(self.settings, cmd)
        creds = jobcreds.issue(signer, cmd, 0.0, lifetime=lifetime)
        body = manifest.build_secret(cmd, self.settings, uid, creds, attempt=attempt)
        try:
            await self.api.create_secret(body)
        except LaunchRefused:
            # Its pod would wait for the Secret until the Job's deadline: the Job goes now.
            self._ended.add(name)
            try:
                await self.api.delete(name)
            except (ApiException, *NETWORK_ERRORS) as exc:
                log.warning("deleting Job %s without its Secret failed (%r)", name, exc)
            raise

    async def stop(self, scan_id: str, why: Stop) -> bool:
        if scan_id not in self._attempts:
            # Not seen here yet (another replica started it): which attempt runs, the API says.
            try:
                _, jobs = await self.api.list_jobs(manifest.pod_selector(scan_id))
            except (ApiException, *NETWORK_ERRORS) as exc:
                if transient(exc):
                    raise LaunchUnavailable(f"listing Jobs of {scan_id} failed: {exc!r}") from exc
                raise
            for job in jobs:
                self._note_attempt(job)
        name = self._name(scan_id)
        known = self.jobs.get(name)
        reported = name in self._ended
        # Marked before deleting: its DELETED event must not look like someone else's doing.
        self._ended.add(name)
        try:
            deleted = await self.api.delete(name)
        except (ApiException, *NETWORK_ERRORS) as exc:
            if not reported:
                self._ended.discard(name)
            if transient(exc):
                raise LaunchUnavailable(f"deleting Job {name} failed: {exc!r}") from exc
            raise
        self._created.discard(name)
        if deleted and not reported:
            deadline = kubestate.deadline_seconds(known) if known else 0
            attempt = self._attempts.get(scan_id, 1)
            await self.on_exit(
                Ending(scan_id=scan_id, deadline_seconds=deadline, stopped=why, attempt=attempt)
            )
        return deleted

    async def shutdown(self) -> None:
        """Stop watching. The Jobs keep running; the next launcher picks them up."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.api.close()

    # -- helpers -------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        async def logged() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("kubernetes executor: %s failed", what)

        task = asyncio.create_task(logged(), name=f"k8s-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- watching ------------------------------------------------------------------------

    async def _watch(self) -> None:
        delay = 1.0
        while True:
            try:
                version = await self._relist()
                delay = 1.0
                while True:
                    version = await self._follow(version)
            except ApiException as exc:
                if exc.status == 410:
                    log.info("Job watch expired (410 Gone); listing again")
                    continue
                log.warning(
                    "Job watch failed (%s %s); again in %.0fs", exc.status, exc.reason, delay
                )
            except (WatchBroken, *NETWORK_ERRORS) as exc:
                log.warning("Job watch failed (%r); again in %.0fs", exc, delay)
            except Exception:
                # kubernetes-asyncio raises a bare Exception for a malformed watch line.
                log.exception("Job watch failed; again in %.0fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _relist(self) -> str:
        version, items = await self.api.list_jobs()
        jobs = {j.metadata.name: j for j in items}
        for name in set(self.jobs) - set(jobs):
            self._gone(self.jobs[name])
        self.jobs = jobs
        self._ended &= set(jobs)
        # Attempts of scans with no Job left are forgotten (a created one is not listed yet).
        scans = {kubestate.scan_id(j) for j in items}
        self._attempts = {
            s: n
            for s, n in self._attempts.items()
            if s in scans or manifest.job_name(s, n) in self._created
        }
        for job in items:
            self._seen(job)
        return version

    async def _follow(self, version: str) -> str:
        """Apply watch events from `version` until the server ends the watch; the last version."""
        async with k8s_watch.Watch(return_type="object") as stream:
            async for event in stream.stream(
                self.api.batch.list_namespaced_job,
                self.namespace,
                label_selector=manifest.SELECTOR,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_seconds,
            ):
                if not isinstance(event, dict) or not isinstance(event.get("raw_object"), dict):
                    raise WatchBroken(f"not a watch event: {event!r:.200}")
                raw = event["raw_object"]
                version = raw.get("metadata", {}).get("resourceVersion") or version
                if event["type"] == "BOOKMARK":
                    continue
                job = kubestate.job(raw)
                if event["type"] == "DELETED":
                    self.jobs.pop(job.metadata.name, None)
                    self._gone(job)
                else:
                    self.jobs[job.metadata.name] = job
                    self._seen(job)
        return version

    def _note_attempt(self, job: kubestate.Job) -> None:
        scan_id = kubestate.scan_id(job)
        if scan_id:
            number = kubestate.attempt(job.metadata)
            self._attempts[scan_id] = max(self._attempts.get(scan_id, 1), number)

    def _seen(self, job: kubestate.Job) -> None:
        name = job.metadata.name
        self._created.discard(name)
        self._note_attempt(job)
        if kubestate.finished(job) is not None and name not in self._ended:
            self._ended.add(name)
            self._spawn(self._report(job), f"report {name}")

    def _gone(self, job: kubestate.Job) -> None:
        name = job.metadata.name
        if name not in self._ended and kubestate.finished(job) is None:
            log.warning(
                "Job %s was deleted before it finished; its scan %s ends when its heartbeats stop",
                name,
                kubestate.scan_id(job),
            )
        self._ended.discard(name)

    async def _report(self, job: kubestate.Job) -> None:
        name = job.metadata.name
        delay = 1.0
        while True:
            try:
                pods = await self.api.pods(manifest.pod_selector(kubestate.scan_id(job)))
                break
            except (ApiException, *NETWORK_ERRORS) as exc:
                if not transient(exc) or name not in self.jobs:
                    # Gone with its pods, or never to be readable: the Job alone must do.
                    pods = []
                    break
                log.warning("reading the pods of Job %s failed (%r); retrying", name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
        ending = kubestate.ending(job, pods)
        if ending is not None:
            log.info("Job %s ended: %s", name, ending)
            await self.on_exit(ending)

    # -- jobs that cannot start ----------------------------------------------------------

    async def _check_pods(self) -> None:
        while True:
            await asyncio.sleep(self.check_every)
            now = datetime.now(UTC)
            waiting = [
                job
                for name, job in self.jobs.items()
                if name not in self._ended
                and kubestate.finished(job) is None
                and not kubestate.started(job)
                and job.metadata.creation_timestamp is not None
                and now - job.metadata.creation_timestamp >= self.pull_wait
            ]
            if not waiting:
                continue
            try:
                pods = await self.api.pods(manifest.SELECTOR)
            except (ApiException, *NETWORK_ERRORS) as exc:
                log.warning("listing scan pods failed (%r)", exc)
                continue
            by_scan: dict[str, list[kubestate.Pod]] = {}
            for pod in pods:
                by_scan.setdefault(pod.metadata.labels.get(manifest.SCAN_LABEL, ""), []).append(pod)
            for job in waiting:
                scan_pods = by_scan.get(manifest.label_value(kubestate.scan_id(job)), [])
                ending = kubestate.not_starting(job, scan_pods, now, self.pull_wait)
                if ending is not None:
                    await self._give_up(job, ending)

    async def _give_up(self, job: kubestate.Job, ending: Ending) -> None:
        name = job.metadata.name
        if name in self._ended:
            return
        self._ended.add(name)
        try:
            await self.api.delete(name)
        except (ApiException, *NETWORK_ERRORS) as exc:
            self._ended.discard(name)
            log.warning("deleting Job %s that cannot start failed (%r)", name, exc)
            return
        log.info("Job %s did not start: %s", name, ending)
        await self.on_exit(ending)
