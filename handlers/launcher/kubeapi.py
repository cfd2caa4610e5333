"""The Kubernetes API as the executor uses it: the client, which failures are worth retrying,
and the calls on Jobs, their pods and each Job's own Secret (its NATS user).

kubernetes-asyncio is untyped; it stays in here, `kubernetes.py` and `kubereconcile.py`.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from handlers.launcher import kubestate, manifest
from handlers.launcher.executor import LaunchRefused, LaunchUnavailable

log = logging.getLogger(__name__)

NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
MAX_BACKOFF = 30.0


class WatchBroken(Exception):
    """The watch stream sent something that is not an event."""


def transient(exc: BaseException) -> bool:
    """Whether asking again later may succeed: 5xx, 429, no HTTP answer at all."""
    if isinstance(exc, ApiException):
        return not exc.status or exc.status == 429 or exc.status >= 500
    return isinstance(exc, NETWORK_ERRORS)


def refusal(exc: ApiException) -> LaunchRefused:
    status = kubestate.api_status(exc.body, exc.status, exc.reason)
    return LaunchRefused(status.reason, status.message)


def unavailable(what: str, exc: BaseException) -> LaunchUnavailable:
    if isinstance(exc, ApiException):
        return LaunchUnavailable(f"{what}: the Kubernetes API answered {exc.status}")
    return LaunchUnavailable(f"{what}: the Kubernetes API is unreachable: {exc!r}")


async def api_client(kubeconfig: str) -> Any:
    """A kubernetes-asyncio ApiClient from a kubeconfig file, else the pod's account."""
    configuration = k8s.Configuration()
    if kubeconfig:
        await k8s_config.load_kube_config(
            config_file=kubeconfig,
            client_configuration=configuration,
            persist_config=False,
        )
    else:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    return k8s.ApiClient(configuration=configuration)


class JobApi:
    """The calls the executor makes, on one namespace, each with the same timeout."""

    def __init__(self, namespace: str, request_timeout: float) -> None:
        self.namespace = namespace
        self.timeout = request_timeout
        # Set by `open`. Typed loosely: the generated API takes JSON dicts as bodies too.
        self.client: Any = None
        self.batch: Any = None
        self.core: Any = None

    async def open(self, kubeconfig: str) -> None:
        self.client = await api_client(kubeconfig)
        self.batch = k8s.BatchV1Api(self.client)
        self.core = k8s.CoreV1Api(self.client)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    def plain(self, obj: Any) -> Any:
        """A kubernetes-asyncio model as the API's own JSON (camelCase dicts)."""
        return self.client.sanitize_for_serialization(obj)

    async def create_job(self, body: dict[str, Any]) -> str:
        """Create a Job; its uid (ApiException and network errors are the caller's)."""
        created = await self.batch.create_namespaced_job(
            self.namespace, body, _request_timeout=self.timeout
        )
        return str(self.plain(created)["metadata"]["uid"])

    async def exists_for(self, scan_id: str, name: str) -> str | None:
        """After 409 AlreadyExists: the Job's uid if it is this scan's, from an earlier delivery
        of the same command (success), unless it names another scan; None if it is gone by
        now."""
        try:
            raw = self.plain(
                await self.batch.read_namespaced_job(
                    name, self.namespace, _request_timeout=self.timeout
                )
            )
        except ApiException as exc:
            if exc.status == 404:  # finished and collected since: nothing left to start
                return None
            if transient(exc):
                raise unavailable(f"reading Job {name}", exc) from exc
            raise refusal(exc) from exc
        except NETWORK_ERRORS as exc:
            raise unavailable(f"reading Job {name}", exc) from exc
        owner = kubestate.scan_id(kubestate.job(raw))
        if owner != scan_id:
            raise LaunchRefused("AlreadyExists", f"Job {name} runs another scan ({owner!r})")
        log.info("scan %s: Job %s exists already (a redelivery)", scan_id, name)
        return str(raw["metadata"]["uid"])

    async def create_secret(self, body: dict[str, Any]) -> None:
        """Create a Job's Secret. 409 AlreadyExists is success: an earlier delivery of the
        same start command made it, for the same Job (name and owner derive from the scan)."""
        name = body["metadata"]["name"]
        try:
            await self.core.create_namespaced_secret(
                self.namespace, body, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                log.info("Secret %s/%s exists already (a redelivery)", self.namespace, name)
                return
            if transient(exc):
                raise unavailable(f"creating Secret {name}", exc) from exc
            raise refusal(exc) from exc
        except NETWORK_ERRORS as exc:
            raise unavailable(f"creating Secret {name}", exc) from exc
        log.info("created Secret %s/%s", self.namespace, name)

    async def list_jobs(self, selector: str = manifest.SELECTOR) -> tuple[str, list[kubestate.Job]]:
        """(resourceVersion, the scan Jobs matching `selector`: all of them by default)."""
        listed = self.plain(
            await self.batch.list_namespaced_job(
                self.namespace, label_selector=selector, _request_timeout=self.timeout
            )
        )
        items = [kubestate.job(raw) for raw in listed.get("items") or ()]
        return listed["metadata"]["resourceVersion"], items

    async def pods(self, selector: str) -> list[kubestate.Pod]:
        listed = self.plain(
            await self.core.list_namespaced_pod(
                self.namespace, label_selector=selector, _request_timeout=self.timeout
            )
        )
        return [kubestate.pod(raw) for raw in listed.get("items") or ()]

    async def delete(self, name: str) -> bool:
        """Delete a Job and (in the background) its pod; False if it was gone already. Its
        Secret goes with it: the garbage collector follows the Secret's owner reference."""
        try:
            await self.batch.delete_namespaced_job(
                name,
                self.namespace,
                propagation_policy="Background",
                _request_timeout=self.timeout,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        log.info("deleted Job %s/%s", self.namespace, name)
        return True
