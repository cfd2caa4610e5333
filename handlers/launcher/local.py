"""The local executor: each scan's job is a `python -m workers.job` child process.

The job gets the env contract and nothing of the launcher's secrets; it runs in its own
session, so stopping it reaches the scanner it started, and it dies with the launcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from contracts import tracing
from contracts.jobs import NATS_CREDS, WORKDIR, job_environ
from contracts.scans import StartScan
from handlers.launcher import jobcreds, sandbox
from handlers.launcher.executor import Ending, LaunchRefused, OnExit
from handlers.launcher.lifecycle import Stop
from handlers.launcher.sandbox import Sandbox
from handlers.natsauth import Signer, write_secret

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class _Job:
    cmd: StartScan
    proc: asyncio.subprocess.Process
    stopped: Stop | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    secrets: str = ""  # the folder of the job's credentials, removed when it ends
    attempt: int = 1


class LocalExecutor:
    def __init__(
        self,
        nats_url: str,
        on_exit: OnExit,
        *,
        environ: dict[str, str],  # what the job inherits: PATH, locale, TMPDIR
        grace: float = 5.0,
        python: str = sys.executable,
        programs: Mapping[str, str] | None = None,
        scope: str = "",
        console_max_bytes: int = 0,
        otlp_endpoint: str = "",
        log_format: str = "",
        signer: Signer | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.nats_url = nats_url
        self.on_exit = on_exit
        self.grace = grace
        self.python = python
        self.base_env = dict(environ)
        self.programs = dict(programs or {})
        self.scope = scope
        self.console_max_bytes = console_max_bytes
        self.telemetry = {"otlp_endpoint": otlp_endpoint, "log_format": log_format}
        self.signer = signer
        self.sandbox = sandbox
        self.jobs: dict[str, _Job] = {}

    async def open(self) -> None:
        """Nothing to watch: a local job is this process's child, or gone."""

    def running(self, scan_id: str) -> bool:
        return scan_id in self.jobs

    async def start(self, cmd: StartScan, *, attempt: int = 1, console_after: int = 0) -> None:
        secrets = ""
        extra: dict[str, str] = {}
        if self.signer is not None or self.sandbox is not None:
            # The job's own folder: only the job's user may enter it.
            secrets = tempfile.mkdtemp(prefix=f"jetscan-{cmd.scan_id}-")
        try:
            argv, extra, preexec = self._prepare(cmd, secrets)
        except OSError as exc:
            shutil.rmtree(secrets, ignore_errors=True)
            raise LaunchRefused("the job's folder could not be prepared", str(exc)) from exc
        creds, workdir = extra.pop(NATS_CREDS, ""), extra.pop(WORKDIR, "")
        env = self.base_env | extra
        env |= job_environ(
            cmd,
            self.nats_url,
            nats_creds=creds,
            workdir=workdir,
            programs=self.programs,
            scope=self.scope,
            console_max_bytes=self.console_max_bytes,
            traceparent=tracing.traceparent(),
            attempt=attempt,
            console_after=console_after,
            **self.telemetry,
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as exc:
            if secrets:
                shutil.rmtree(secrets, ignore_errors=True)
            raise LaunchRefused("the job could not start", str(exc)) from exc
        job = _Job(cmd, proc, secrets=secrets, attempt=attempt)
        self.jobs[cmd.scan_id] = job
        log.info("scan %s: job pid %d started (%s %s)", cmd.scan_id, proc.pid, cmd.tool, cmd.target)
        job.tasks.append(asyncio.create_task(self._watch(job)))
        # The job enforces its own deadline; this one catches a job that does not.
        job.tasks.append(asyncio.create_task(self._deadline(job)))

    def _prepare(
        self, cmd: StartScan, folder: str
    ) -> tuple[list[str], dict[str, str], Callable[[], None]]:
        """The job's argv, the variables to add, and what its child runs before exec."""
        program = [self.python, "-m", "workers.job"]
        extra: dict[str, str] = {}
        box = self.sandbox
        if box is not None and box.uid is not None and box.gid is not None:
            os.chown(folder, box.uid, box.gid)
        if self.signer is not None:
            creds = os.path.join(folder, "nats.creds")
            write_secret(creds, jobcreds.issue(self.signer, cmd, self.grace))
            if box is not None and box.uid is not None and box.gid is not None:
                os.chown(creds, box.uid, box.gid)
            extra[NATS_CREDS] = creds
        if box is None:
            return program, extra, _child_setup
        # Its scratch space and HOME (ZAP keeps its state there) inside that folder.
        extra |= {WORKDIR: os.path.join(folder, "work"), "HOME": folder, **sandbox.environ(cmd)}
        set_limits = sandbox.apply_limits(sandbox.limits(box, cmd, self.grace))

        def child() -> None:
            _child_setup()
            set_limits()

        return sandbox.argv(box, cmd, program), extra, child

    async def _deadline(self, job: _Job) -> None:
        await asyncio.sleep(job.cmd.deadline_seconds + 2 * self.grace)
        await self.stop(job.cmd.scan_id, Stop.DEADLINE)

    async def _watch(self, job: _Job) -> None:
        returncode = await job.proc.wait()
        self.jobs.pop(job.cmd.scan_id, None)
        if job.secrets:
            shutil.rmtree(job.secrets, ignore_errors=True)
        for task in job.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        log.info("scan %s: job exited with %d", job.cmd.scan_id, returncode)
        await self.on_exit(
            Ending(
                scan_id=job.cmd.scan_id,
                deadline_seconds=job.cmd.deadline_seconds,
                returncode=returncode,
                stopped=job.stopped,
                attempt=job.attempt,
            )
        )

    async def stop(self, scan_id: str, why: Stop) -> bool:
        """SIGTERM the job's process group now, SIGKILL it after the grace period."""
        job = self.jobs.get(scan_id)
        if job is None:
            return False
        job.stopped = job.stopped or why
        _signal_group(job.proc.pid, signal.SIGTERM)
        job.tasks.append(asyncio.create_task(self._kill_after_grace(job)))
        return True

    async def _kill_after_grace(self, job: _Job) -> None:
        # Cancelled by `_watch` once the job has exited.
        await asyncio.sleep(self.grace)
        _signal_group(job.proc.pid, signal.SIGKILL)

    async def shutdown(self) -> None:
        jobs = list(self.jobs.values())
        for job in jobs:
            await self.stop(job.cmd.scan_id, Stop.SHUTDOWN)
        for job in jobs:
            await asyncio.gather(*job.tasks, return_exceptions=True)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)
