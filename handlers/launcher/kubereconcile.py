"""Reconciling on start: the Kubernetes executor's Jobs against the scans jetscan knows.

A launcher that starts (after a crash, an upgrade, the whole stack's loss) asks the queries
service which scans are RUNNING and lists the scan Jobs:
- a RUNNING scan with no Job for its current attempt lost its job while nobody watched; its
  end is reported as `lost`, so the launcher runs it again while attempts remain;
- a Job whose scan nobody knows (a wiped database, say) is deleted.
"""

from __future__ import annotations

import asyncio
import logging

from kubernetes_asyncio.client.exceptions import ApiException

from contracts.scans import LOST
from handlers.launcher import kubestate
from handlers.launcher.catalog import Catalog, CatalogUnavailable
from handlers.launcher.executor import Ending, OnExit
from handlers.launcher.kubeapi import MAX_BACKOFF, NETWORK_ERRORS, JobApi

log = logging.getLogger(__name__)


async def reconcile(api: JobApi, catalog: Catalog, on_exit: OnExit, ended: set[str]) -> None:
    """Reconcile once, retrying until the API and the catalog answer; Jobs deleted here go
    into `ended` (their DELETED event is this launcher's own doing)."""
    delay = 1.0
    while True:
        try:
            await _once(api, catalog, on_exit, ended)
            return
        except (CatalogUnavailable, ApiException, *NETWORK_ERRORS) as exc:
            log.warning("reconciling Jobs with scans failed (%r); retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)


async def _once(api: JobApi, catalog: Catalog, on_exit: OnExit, ended: set[str]) -> None:
    # Scans first, then Jobs: a scan is RUNNING only after its Job existed, so every
    # running scan's Job (unless deleted) is in the list that follows.
    running = await catalog.running()
    _, jobs = await api.list_jobs()
    have = {(kubestate.scan_id(job), kubestate.attempt(job.metadata)) for job in jobs}
    for scan in running:
        attempt = max(scan.attempts, 1)
        if (scan.id, attempt) not in have:
            log.warning("scan %s is running but has no Job; it was lost", scan.id)
            which = "the scan" if attempt == 1 else f"attempt {attempt} of the scan"
            await on_exit(
                Ending(
                    scan_id=scan.id,
                    deadline_seconds=scan.deadline_seconds,
                    cause=LOST,
                    detail=f"no Job for {which} in namespace {api.namespace}",
                    attempt=attempt,
                )
            )
    for job in jobs:
        scan_id = kubestate.scan_id(job)
        if not scan_id or not await catalog.known(scan_id):
            log.warning("Job %s runs no known scan (%r); deleting it", job.metadata.name, scan_id)
            ended.add(job.metadata.name)
            await api.delete(job.metadata.name)
