"""An in-test Kubernetes API server: the subset the kubernetes executor uses, as a Starlette app
on 127.0.0.1, speaking real Kubernetes JSON.

- batch/v1 Jobs: create (409 AlreadyExists, 422 Invalid against the OpenAPI schema), get,
  list and watch by label selector, delete with `propagationPolicy`; core/v1 Pods: list, get;
  core/v1 Secrets: create (409, 422), get, delete. The garbage collector: deleting a Job with
  `Background`/`Foreground` deletes the Secrets it owns (`ownerReferences`); `Orphan` strips
  the reference.
- One resourceVersion counter for everything, as etcd's revision. `?watch=true` streams
  ADDED/MODIFIED/DELETED events as JSON lines from `resourceVersion`, a BOOKMARK when the
  watch times out, and an ERROR event with a 410 `Expired` Status for a version older than
  the last compaction.
- A created Job is "run" as a kubelet would run its one container: `python -m workers.job`
  with the container's env, each volume a directory under `workroot` (paths in env values
  mapped to it; `secret` and `projected` volumes filled from Secrets, the container waiting in
  ContainerCreating while one is missing), status moving Pending → Running →
  Succeeded/Failed, the Job's conditions
  (`Complete`, `Failed` with `BackoffLimitExceeded` or `DeadlineExceeded`) as the Job
  controller writes them. `activeDeadlineSeconds` is enforced; deleting a Job with
  `Background` or `Foreground` propagation kills and removes its pod, `Orphan` (the API's
  default for Jobs) leaves it running.
- Faults on demand: an HTTP error for the next N requests of a kind, images that cannot be
  pulled, OOM kills, held watches and compaction (for 410).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import secrets
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import ROOT
from tests.kubeschema import validate

_REASONS = {
    401: ("Unauthorized", "Unauthorized"),
    403: (
        "Forbidden",
        'jobs.batch is forbidden: User "system:serviceaccount:jetscan:launcher"'
        ' cannot create resource "jobs" in API group "batch"',
    ),
    404: ("NotFound", "not found"),
    409: ("AlreadyExists", "already exists"),
    422: ("Invalid", "invalid"),
    429: ("TooManyRequests", "the server has received too many requests"),
    500: ("InternalError", "Internal error occurred: etcdserver: request timed out"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
}
_CLOSE = object()


def truthy(value: str | None) -> bool:
    """A query flag as the API server parses it (Go's strconv.ParseBool)."""
    return (value or "") in ("1", "t", "T", "true", "TRUE", "True")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, message: str = "", **details: str) -> dict[str, Any]:
    reason, default = _REASONS.get(code, ("Unknown", "error"))
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message or default,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def status(code: int, message: str = "", **details: str) -> JSONResponse:
    return JSONResponse(status_body(code, message, **details), status_code=code)


def selects(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass(eq=False)
class _Watcher:
    resource: str
    namespace: str
    selector: str
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


@dataclass
class _Fault:
    method: str
    resource: str
    code: int
    times: int


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class FakeCluster:
    def __init__(self, workroot: Path, *, base_env: dict[str, str], token: str) -> None:
        self.workroot = workroot
        self.base_env = base_env
        self.token = token
        # etcd's revision is never 0 in a live cluster ("0" in a watch means "any version").
        self.version = 1000
        self.compacted = 0
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            "jobs": {},
            "pods": {},
            "secrets": {},
        }
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []
        self.watchers: set[_Watcher] = set()
        self.hold_watches = False
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.deletions: dict[str, str] = {}
        self.faults: list[_Fault] = []
        self.unpullable: set[str] = set()
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.oom: set[str] = set()
        # Pods whose node was taken away (`lose_node`).
        self.lost: set[str] = set()
        self.max_grace = 5.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""
        self.app = Starlette(
            routes=[
                Route("/apis/batch/v1/namespaces/{ns}/jobs", self.jobs, methods=["GET", "POST"]),
                Route(
                    "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
                    self.job,
                    methods=["GET", "DELETE"],
                ),
                Route("/api/v1/namespaces/{ns}/pods", self.pods, methods=["GET"]),
                Route("/api/v1/namespaces/{ns}/pods/{name}", self.pod, methods=["GET"]),
                Route("/api/v1/namespaces/{ns}/secrets", self.secrets_, methods=["POST"]),
                Route(
                    "/api/v1/namespaces/{ns}/secrets/{name}",
                    self.secret,
                    methods=["GET", "DELETE"],
                ),
            ]
        )

    # -- lifecycle -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeCluster]:
        server = _Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=0, log_config=None, lifespan="off", ws="none"
            )
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            assert not task.done(), "the fake API server did not start"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            for w in list(self.watchers):
                w.queue.put_nowait(_CLOSE)
            server.should_exit = True
            await task
            for task_ in list(self._tasks):
                task_.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig file that points kubernetes-asyncio at this server with a token."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "launcher", "user": {"token": self.token}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "launcher"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    # -- fault injection -----------------------------------------------------------------

    def fail(self, method: str, resource: str, code: int, times: int = 1) -> None:
        """Answer the next `times` `method` requests on `resource` with HTTP `code`."""
        self.faults.append(_Fault(method, resource, code, times))

    def _fault(self, method: str, resource: str) -> JSONResponse | None:
        for fault in self.faults:
            if fault.method == method and fault.resource == resource and fault.times > 0:
                fault.times -= 1
                return status(fault.code)
        return None

    async def oom_kill(self, job_name: str) -> None:
        """Kill the Job's container as the kernel's OOM killer would."""
        for (_, name), pod in list(self.objects["pods"].items()):
            if pod["metadata"]["labels"].get("job-name") == job_name and name in self.procs:
                self.oom.add(name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.procs[name].pid, signal.SIGKILL)

    async def lose_node(self, job_name: str) -> None:
        """Take away the node of the Job's pod, as when its machine dies: the container dies
        without reporting an exit code; the pod garbage collector marks the pod Failed with a
        `DisruptionTarget` condition, the Job fails (`backoffLimit: 0`), the pod is deleted."""
        for (_, name), pod in list(self.objects["pods"].items()):
            if pod["metadata"]["labels"].get("job-name") == job_name and name in self.procs:
                self.lost.add(name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.procs[name].pid, signal.SIGKILL)

    def compact(self) -> None:
        """Forget history up to now and end every watch: a watch resumed from an older version
        gets 410 Gone."""
        self.compacted = self.version
        self.history.clear()
        for w in list(self.watchers):
            w.queue.put_nowait(_CLOSE)

    # -- storage -------------------------------------------------------------------------

    def _record(self, resource: str, ns: str, kind: str, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        snapshot = copy.deepcopy(obj)
        self.history.append((self.version, resource, ns, {"type": kind, "object": snapshot}))
        if self.hold_watches:
            return
        for w in list(self.watchers):
            labels = snapshot["metadata"].get("labels", {})
            if w.resource == resource and w.namespace == ns and selects(w.selector, labels):
                w.queue.put_nowait({"type": kind, "object": snapshot})

    def _put(self, resource: str, ns: str, obj: dict[str, Any], kind: str = "MODIFIED") -> None:
        self.objects[resource][(ns, obj["metadata"]["name"])] = obj
        self._record(resource, ns, kind, obj)

    def _remove(self, resource: str, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects[resource].pop((ns, name), None)
        if obj is not None:
            obj["metadata"]["deletionTimestamp"] = now()
            self._record(resource, ns, "DELETED", obj)
        return obj

    def job_named(self, name: str, ns: str = "") -> dict[str, Any] | None:
        for (namespace, n), job in self.objects["jobs"].items():
            if n == name and (not ns or ns == namespace):
                return job
        return None

    def put_job(self, ns: str, job: dict[str, Any]) -> None:
        """Store a Job as created by someone else (nothing runs it)."""
        job.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
        job["metadata"].update(namespace=ns, creationTimestamp=now())
        job.setdefault("status", {})
        self._put("jobs", ns, job, "ADDED")

    # -- HTTP ----------------------------------------------------------------------------

    def _denied(self, request: Request) -> JSONResponse | None:
        self.requests.append((request.method, request.url.path, dict(request.query_params)))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return status(401)
        return None

    async def jobs(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        ns = request.path_params["ns"]
        if request.method == "POST":
            return await self._create_job(ns, await request.json())
        return await self._collection(request, "jobs", ns, "JobList", "batch/v1")

    async def job(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        ns, name = request.path_params["ns"], request.path_params["name"]
        if request.method == "DELETE":
            if fault := self._fault("DELETE", "jobs"):
                return fault
            return self._delete_job(ns, name, request.query_params.get("propagationPolicy", ""))
        job = self.objects["jobs"].get((ns, name))
        if job is None:
            return status(404, f'jobs.batch "{name}" not found', name=name, kind="jobs")
        return JSONResponse(job)

    async def pods(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        return await self._collection(request, "pods", request.path_params["ns"], "PodList", "v1")

    async def pod(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        ns, name = request.path_params["ns"], request.path_params["name"]
        pod = self.objects["pods"].get((ns, name))
        if pod is None:
            return status(404, f'pods "{name}" not found', name=name, kind="pods")
        return JSONResponse(pod)

    async def secrets_(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        if fault := self._fault("POST", "secrets"):
            return fault
        ns, body = request.path_params["ns"], await request.json()
        try:
            validate(body)
        except kubernetes_validate.ValidationError as exc:
            return status(422, f"Secret is invalid: {exc.message}")
        name = body["metadata"]["name"]
        if (ns, name) in self.objects["secrets"]:
            return status(409, f'secrets "{name}" already exists', name=name, kind="secrets")
        secret = copy.deepcopy(body)
        secret["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now())
        self._put("secrets", ns, secret, "ADDED")
        return JSONResponse(secret, status_code=201)

    async def secret(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        ns, name = request.path_params["ns"], request.path_params["name"]
        found = self.objects["secrets"].get((ns, name))
        if found is None:
            return status(404, f'secrets "{name}" not found', name=name, kind="secrets")
        if request.method == "DELETE":
            self._remove("secrets", ns, name)
        return JSONResponse(found)

    def secret_data(self, ns: str, name: str) -> dict[str, bytes] | None:
        """A Secret's decoded data: a stored Secret's, else one the test set in `secrets`."""
        stored = self.objects["secrets"].get((ns, name))
        if stored is not None:
            return {k: base64.b64decode(v) for k, v in stored.get("data", {}).items()}
        return self.secrets.get(name)

    def _collect_dependents(self, ns: str, uid: str, policy: str) -> None:
        """The garbage collector, for the Secrets an owner with `uid` had."""
        for (namespace, name), secret in list(self.objects["secrets"].items()):
            refs = secret["metadata"].get("ownerReferences", [])
            if namespace != ns or not any(r["uid"] == uid for r in refs):
                continue
            if policy in ("Background", "Foreground"):
                self._remove("secrets", ns, name)
            else:
                secret["metadata"]["ownerReferences"] = [r for r in refs if r["uid"] != uid]
                self._put("secrets", ns, secret)

    async def _collection(
        self, request: Request, resource: str, ns: str, kind: str, api_version: str
    ) -> Response:
        q = request.query_params
        watching = truthy(q.get("watch"))
        if fault := self._fault("WATCH" if watching else "LIST", resource):
            return fault
        selector = q.get("labelSelector", "")
        if watching:
            return self._watch(resource, ns, selector, q)
        items = [
            obj
            for (namespace, _), obj in sorted(self.objects[resource].items())
            if namespace == ns and selects(selector, obj["metadata"].get("labels", {}))
        ]
        return JSONResponse(
            {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self.version)},
                "items": items,
            }
        )

    def _watch(self, resource: str, ns: str, selector: str, q: Any) -> Response:
        since = q.get("resourceVersion") or "0"
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = truthy(q.get("allowWatchBookmarks"))
        watcher = _Watcher(resource, ns, selector)
        if since == "0":
            first = [
                {"type": "ADDED", "object": copy.deepcopy(obj)}
                for (namespace, _), obj in self.objects[resource].items()
                if namespace == ns and selects(selector, obj["metadata"].get("labels", {}))
            ]
        elif int(since) < self.compacted:
            expired = status_body(410, f"too old resource version: {since} ({self.compacted})")
            expired["reason"] = "Expired"
            first = [{"type": "ERROR", "object": expired}]
            watcher.queue.put_nowait(_CLOSE)
        else:
            first = [
                event
                for version, res, namespace, event in self.history
                if version > int(since)
                and res == resource
                and namespace == ns
                and selects(selector, event["object"]["metadata"].get("labels", {}))
            ]
        # Registered before anything is awaited: no event falls between history and live.
        self.watchers.add(watcher)
        kind = "Job" if resource == "jobs" else "Pod"

        async def lines() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout
            try:
                for event in first:
                    yield json.dumps(event).encode() + b"\n"
                while True:
                    try:
                        event = await asyncio.wait_for(watcher.queue.get(), end - loop.time())
                    except TimeoutError:
                        if bookmarks and not self.hold_watches:
                            mark = {
                                "kind": kind,
                                "metadata": {"resourceVersion": str(self.version)},
                            }
                            yield json.dumps({"type": "BOOKMARK", "object": mark}).encode() + b"\n"
                        return
                    if event is _CLOSE:
                        return
                    yield json.dumps(event).encode() + b"\n"
            finally:
                self.watchers.discard(watcher)

        return StreamingResponse(lines(), media_type="application/json")

    async def _create_job(self, ns: str, body: dict[str, Any]) -> Response:
        if fault := self._fault("POST", "jobs"):
            return fault
        try:
            validate(body)
        except kubernetes_validate.ValidationError as exc:
            return status(422, f"Job is invalid: {exc.message}")
        name = body["metadata"]["name"]
        # One of the API server's own checks, which the OpenAPI schema does not express.
        if body["spec"].get("activeDeadlineSeconds", 0) < 0:
            return status(
                422,
                f'Job.batch "{name}" is invalid: spec.activeDeadlineSeconds: Invalid value:'
                f" {body['spec']['activeDeadlineSeconds']}: must be greater than or equal to 0",
            )
        if (ns, name) in self.objects["jobs"]:
            return status(409, f'jobs.batch "{name}" already exists', name=name, kind="jobs")
        job = copy.deepcopy(body)
        uid = str(uuid.uuid4())
        job["metadata"].update(namespace=ns, uid=uid, creationTimestamp=now(), generation=1)
        spec = job["spec"]
        controller = {"batch.kubernetes.io/controller-uid": uid}
        spec.setdefault("selector", {"matchLabels": controller})
        spec.update(completions=1, parallelism=1, suspend=False, completionMode="NonIndexed")
        spec["template"]["metadata"].setdefault("labels", {}).update(
            {
                **controller,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        job["status"] = {}
        self._put("jobs", ns, job, "ADDED")
        self._spawn(self._run(ns, name))
        return JSONResponse(job, status_code=201)

    def _delete_job(self, ns: str, name: str, policy: str) -> Response:
        job = self._remove("jobs", ns, name)
        if job is None:
            return status(404, f'jobs.batch "{name}" not found', name=name, kind="jobs")
        self.deletions[name] = policy
        self._collect_dependents(ns, job["metadata"]["uid"], policy)
        if policy in ("Background", "Foreground"):
            for (namespace, pod_name), pod in list(self.objects["pods"].items()):
                if namespace == ns and pod["metadata"]["labels"].get("job-name") == name:
                    self._spawn(self._delete_pod(ns, pod_name))
        return JSONResponse(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": "batch",
                    "kind": "jobs",
                    "uid": job["metadata"]["uid"],
                },
            }
        )

    # -- the Job controller and kubelet --------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _update(self, resource: str, ns: str, name: str, **status: Any) -> dict[str, Any] | None:
        obj = self.objects[resource].get((ns, name))
        if obj is not None:
            obj.setdefault("status", {}).update(status)
            self._put(resource, ns, obj)
        return obj

    async def _stop_process(self, pod_name: str, grace: float) -> None:
        proc = self.procs.get(pod_name)
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), min(grace, self.max_grace))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    async def _delete_pod(self, ns: str, name: str) -> None:
        pod = self.objects["pods"].get((ns, name))
        if pod is None:
            return
        grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        await self._stop_process(name, grace)
        proc = self.procs.get(name)
        if proc is not None:
            await proc.wait()
        self._remove("pods", ns, name)

    def _container_status(self, pod: dict[str, Any], **fields: Any) -> list[dict[str, Any]]:
        container = pod["spec"]["containers"][0]
        return [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "restartCount": 0,
                **fields,
            }
        ]

    async def _run(self, ns: str, name: str) -> None:
        job = self.objects["jobs"][(ns, name)]
        template = job["spec"]["template"]
        pod_name = f"{name}-{secrets.token_hex(3)[:5]}"
        started = now()
        self._update("jobs", ns, name, startTime=started, active=1, ready=0, terminating=0)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now(),
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": job["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**copy.deepcopy(template["spec"]), "nodeName": "fake-node"},
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        }
        pod["status"]["containerStatuses"] = self._container_status(
            pod, ready=False, started=False, state={"waiting": {"reason": "ContainerCreating"}}
        )
        self._put("pods", ns, pod, "ADDED")
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline:
            self._spawn(self._deadline(ns, name, pod_name, float(deadline)))
        container = template["spec"]["containers"][0]
        if container["image"] in self.unpullable:
            await self._cannot_pull(ns, pod, container["image"])
            return
        proc = await self._start(pod_name, template["spec"], container)
        running = {"running": {"startedAt": now()}}
        self._update(
            "pods",
            ns,
            pod_name,
            phase="Running",
            podIP="10.0.0.7",
            containerStatuses=self._container_status(pod, ready=True, started=True, state=running),
        )
        self._update("jobs", ns, name, ready=1)
        returncode = await proc.wait()
        if pod_name in self.lost:
            await self._node_gone(ns, name, pod_name)
            return
        code = 128 - returncode if returncode < 0 else returncode
        reason = "OOMKilled" if pod_name in self.oom else "Completed" if code == 0 else "Error"
        terminated = {
            "terminated": {
                "exitCode": code,
                "reason": reason,
                "startedAt": running["running"]["startedAt"],
                "finishedAt": now(),
                "containerID": f"containerd://{secrets.token_hex(16)}",
            }
        }
        self._update(
            "pods",
            ns,
            pod_name,
            phase="Succeeded" if code == 0 else "Failed",
            containerStatuses=self._container_status(
                pod, ready=False, started=False, state=terminated
            ),
        )
        self._finish(ns, name, succeeded=code == 0)

    async def _node_gone(self, ns: str, name: str, pod_name: str) -> None:
        disruption = _condition(
            "DisruptionTarget", "DeletionByPodGC", "PodGC: node no longer exists", now()
        )
        self._update("pods", ns, pod_name, phase="Failed", conditions=[disruption])
        self._finish(ns, name, succeeded=False)
        # The Job controller's tracking finalizer keeps the pod readable a moment longer.
        await asyncio.sleep(1.0)
        self._remove("pods", ns, pod_name)

    async def _cannot_pull(self, ns: str, pod: dict[str, Any], image: str) -> None:
        name = pod["metadata"]["name"]
        for reason, message in (
            ("ErrImagePull", f'failed to pull and unpack image "{image}": not found'),
            ("ImagePullBackOff", f'Back-off pulling image "{image}"'),
        ):
            await asyncio.sleep(0.1)
            waiting = {"waiting": {"reason": reason, "message": message}}
            if (ns, name) not in self.objects["pods"]:
                return
            self._update(
                "pods",
                ns,
                name,
                containerStatuses=self._container_status(
                    pod, ready=False, started=False, state=waiting
                ),
            )

    async def _start(
        self, pod_name: str, spec: dict[str, Any], container: dict[str, Any]
    ) -> asyncio.subprocess.Process:
        poddir = self.workroot / pod_name
        mounts: dict[str, Path] = {}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        ns = self._namespace_of(pod_name)
        for mount in container.get("volumeMounts", []):
            host = poddir / mount["name"]
            host.mkdir(parents=True, exist_ok=True)
            for name, items in _secret_sources(volumes[mount["name"]]):
                data = await self._secret_when_there(ns, name)
                for item in items:
                    (host / item["path"]).write_bytes(data.get(item["key"], b""))
            mounts[mount["mountPath"]] = host

        def mapped(value: str) -> str:
            for path, host in mounts.items():
                if value == path or value.startswith(path + "/"):
                    return str(host) + value[len(path) :]
            return value

        env = self.base_env | {e["name"]: mapped(e["value"]) for e in container.get("env", [])}
        log = (poddir / "container.log").open("wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "workers.job",
                env=env,
                cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        self.procs[pod_name] = proc
        return proc

    def _namespace_of(self, pod_name: str) -> str:
        return next(ns for (ns, name) in self.objects["pods"] if name == pod_name)

    async def _secret_when_there(self, ns: str, name: str) -> dict[str, bytes]:
        """As the kubelet: a pod whose Secret is missing waits (ContainerCreating) for it."""
        while (data := self.secret_data(ns, name)) is None:  # noqa: ASYNC110 - as kubelet polls
            await asyncio.sleep(0.05)
        return data

    def _finish(self, ns: str, name: str, *, succeeded: bool) -> None:
        job = self.objects["jobs"].get((ns, name))
        if job is None:
            return
        st = job["status"]
        if any(c["type"] in ("Complete", "Failed") for c in st.get("conditions", [])):
            return
        target = next((c for c in st.get("conditions", []) if c["type"] == "FailureTarget"), None)
        at = now()
        if target is not None:
            conditions = [*st["conditions"], {**target, "type": "Failed"}]
            counts = {"failed": 1}
        elif succeeded:
            conditions = [
                _condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    at,
                ),
                _condition(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    at,
                ),
            ]
            counts = {"succeeded": 1, "completionTime": at}
        else:
            conditions = [
                _condition(
                    "FailureTarget",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    at,
                ),
                _condition(
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    at,
                ),
            ]
            counts = {"failed": 1}
        self._update("jobs", ns, name, conditions=conditions, active=0, ready=0, **counts)

    async def _deadline(self, ns: str, name: str, pod_name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        job = self.objects["jobs"].get((ns, name))
        if job is None or any(
            c["type"] in ("Complete", "Failed") for c in job["status"].get("conditions", [])
        ):
            return
        target = _condition(
            "FailureTarget",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            now(),
        )
        self._update("jobs", ns, name, conditions=[target])
        if pod_name in self.procs:
            # The pod is deleted; the Job fails once its container has stopped.
            await self._delete_pod(ns, pod_name)
        else:
            self._remove("pods", ns, pod_name)
            self._finish(ns, name, succeeded=False)


def _secret_sources(volume: dict[str, Any]) -> list[tuple[str, list[dict[str, str]]]]:
    """(Secret name, items) of a `secret` or `projected` volume."""
    if "secret" in volume:
        return [(volume["secret"]["secretName"], volume["secret"].get("items", []))]
    sources = volume.get("projected", {}).get("sources", [])
    return [(s["secret"]["name"], s["secret"].get("items", [])) for s in sources if "secret" in s]


def _condition(kind: str, reason: str, message: str, at: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": at,
        "lastTransitionTime": at,
    }
