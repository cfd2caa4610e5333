"""The scan-job runtime: `python -m workers.job`, inside a scan's Kubernetes Job or subprocess.

Reads the env contract (`workers.jobenv`); publishes `evt.scan.<id>.running`; keeps a heartbeat
in the `heartbeats` bucket; runs the registry's argv (own process group, no shell, no
`JETSCAN_*` variables) with its console streamed to `scan.output.<id>` (`workers.console`);
stores the raw output as `scans/<scan_id>/<output_file>` in the `artifacts` object store;
publishes one `ScanResult` on `scan.results.<tool>.<scan_id>`. Terminal events are the launcher's.

Exit codes (the first that applies):
- 2 `EXIT_BAD_ENV`: the env contract is invalid. One line on stderr; nothing runs or is sent.
- 5 `EXIT_NATS`: NATS could not be reached (the scanner is not started), or the running event
  or the result could not be published.
- 128+N: stopped by signal N (SIGTERM 143, SIGINT 130) while the scanner ran: the scanner's
  process group gets SIGTERM, then SIGKILL after a grace period; `EndOfOutput` is published,
  no result. A signal after the scanner has exited changes nothing.
- 124 `EXIT_DEADLINE`: `JETSCAN_DEADLINE_SECONDS` passed. The scanner is stopped as for a
  signal, and a partial result with an error is published from what it wrote.
- 3 `EXIT_SCANNER_FAILED`: the scanner exited with a code outside its accepted set, or could
  not be started (reported as 127). The result carries the error, and findings and data when
  the output still parsed.
- 6 `EXIT_UNREACHED`: the scanner ran and its output parsed, but it reached nothing (every host
  down, the server refused, no resolver answered: the tool's `unreached`). The result carries
  the reason and is marked partial, so it fixes no finding.
- 4 `EXIT_BAD_OUTPUT`: the scanner succeeded but its output file is missing or does not parse.
  The result carries the error, no findings and the tool's empty data, marked partial.
- 0 `EXIT_OK`: accepted exit code and parsed output; the result is published.
- 1: an unexpected error (a bug); Python prints the traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts import subjects, tracing, wire
from contracts.output import Stream
from contracts.results import Heartbeat
from contracts.scans import ScanEvent, ScanStatus, event_id
from scanners.context import JobContext
from scanners.dns.config import nameserver
from workers import jobenv, logs, screening, telemetry
from workers.console import MAX_IN_FLIGHT, Console
from workers.jobenv import JobEnv, JobEnvError
from workers.jobresult import (
    EXIT_BAD_ENV,
    EXIT_NATS,
    EXIT_NOT_STARTED,
    Scanned,
    finish,
    publish,
)
from workers.orphans import die_with_parent

log = logging.getLogger(__name__)

HEARTBEATS = "heartbeats"
_DRAIN_TIMEOUT = 60.0


def exit_status(returncode: int) -> int:
    """A process's exit code as a shell reports it: death by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def main() -> int:
    # Again here: a local job started through setpriv lost the launcher's setting when it
    # changed user.
    die_with_parent(signal.SIGKILL)
    environ = dict(os.environ)
    try:
        env = jobenv.parse(environ)
    except JobEnvError as exc:
        sys.stderr.write(f"jetscan job: {exc}\n")
        return EXIT_BAD_ENV
    logs.configure("INFO", env.log_format, role="job")
    with (
        telemetry.tracing_to(env.otlp_endpoint, "jetscan-job"),
        tracing.span("job", {tracing.HEADER: env.traceparent}, scan=env.scan_id),
    ):
        return asyncio.run(run(env, jobenv.scanner_environ(environ)))


async def run(
    env: JobEnv,
    scanner_env: Mapping[str, str],
    *,
    heartbeat_every: float = 2.0,
    grace: float = 5.0,
    connect_attempts: int = 15,
) -> int:
    """Run one scan job; return its exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        log.info("scan %s: got signal %d, stopping the scanner", env.scan_id, signum)
        signals.append(signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        nc = await _connect(env, connect_attempts)
        if nc is None:
            return EXIT_NATS
        try:
            js = nc.jetstream()
            event = ScanEvent(
                scan_id=env.scan_id, status=ScanStatus.RUNNING, at=_now(), attempt=env.attempt
            )
            running = subjects.scan_event(env.scan_id, ScanStatus.RUNNING)
            msg_id = event_id(env.scan_id, ScanStatus.RUNNING, env.attempt)
            if not await publish(js, running, wire.encode(event), msg_id):
                return EXIT_NATS
            beating = await _start_heartbeat(js, env.scan_id, heartbeat_every)
            try:
                # A fresh directory each run: a stale output file from an earlier attempt must
                # never pass for this run's output.
                if env.workdir:
                    Path(env.workdir).mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(prefix="scan-", dir=env.workdir or None) as tmp:
                    workdir = Path(tmp)
                    scanned = await _scan(nc, env, workdir, scanner_env, stop, grace)
                    if scanned.stopped:
                        return 128 + signals[0]
                    return await finish(js, env, workdir, scanned)
            finally:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
        finally:
            # Every publish has been acked by now: a failed drain loses nothing.
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await asyncio.wait_for(nc.drain(), _DRAIN_TIMEOUT)
            await nc.close()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _connect(env: JobEnv, attempts: int) -> Client | None:
    async def on_error(exc: Exception) -> None:
        log.warning("NATS: %r", exc)

    try:
        return await nats.connect(
            env.nats_url,
            user_credentials=env.nats_creds or None,
            connect_timeout=5,
            max_reconnect_attempts=attempts,
            # The job's credentials let it read replies on this prefix only.
            inbox_prefix=subjects.scan_inbox(env.scan_id),
            error_cb=on_error,
        )
    except (OSError, nats.errors.Error) as exc:
        log.error("scan %s: NATS at %s is unreachable: %r", env.scan_id, env.nats_url, exc)
        return None


async def _scan(
    nc: Client,
    env: JobEnv,
    workdir: Path,
    scanner_env: Mapping[str, str],
    stop: asyncio.Event,
    grace: float,
) -> Scanned:
    """Run the scanner with its console streamed; stop it on `stop` or at the deadline."""
    console = Console(
        nc.jetstream(publish_async_max_pending=MAX_IN_FLIGHT),
        env.scan_id,
        max_bytes=env.console_max_bytes,
        after=env.console_after,
        attempt=env.attempt,
    )
    if env.attempt > 1:
        console.line(
            Stream.STDERR,
            f"[jetscan] attempt {env.attempt}: jetscan lost the job of the previous attempt;"
            " the scan runs again from the start".encode(),
        )
    sender = asyncio.create_task(console.run())
    scanned: Scanned | None = None
    try:
        if stop.is_set():
            scanned = Scanned(exit_code=EXIT_NOT_STARTED, stopped=True)
        else:
            scanned = await _supervise(console, env, workdir, scanner_env, stop, grace)
    finally:
        console.close(None if scanned is None else scanned.exit_code)
        try:
            await asyncio.wait_for(sender, _DRAIN_TIMEOUT)
        except TimeoutError:
            log.error("scan %s: console not fully published in %s s", env.scan_id, _DRAIN_TIMEOUT)
    if console.dropped or console.lost:
        log.warning(
            "scan %s: %d lines dropped, %d lost", env.scan_id, console.dropped, console.lost
        )
    return scanned


async def _supervise(
    console: Console,
    env: JobEnv,
    workdir: Path,
    scanner_env: Mapping[str, str],
    stop: asyncio.Event,
    grace: float,
) -> Scanned:
    try:
        found = await screening.screen(env.target, env.scope, _nameservers(env))
    except screening.Refused as exc:
        message = f"scan refused: {exc}"
        console.line(Stream.STDERR, f"[jetscan] {message}".encode())
        return Scanned(exit_code=EXIT_NOT_STARTED, start_error=message)
    job = JobContext(
        workdir=workdir,
        programs=env.programs,
        scope=env.scope,
        deadline_seconds=env.deadline_seconds,
        pinned=screening.pin(found),
    )
    for relative, content in env.spec.prepare(env.config, env.target, job).items():
        path = workdir / relative
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise RuntimeError(f"{env.tool}: prepared file {relative!r} leaves the work directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    argv = env.spec.build_argv(env.config, env.target, job)
    log.info("scan %s: running %s", env.scan_id, argv)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env=dict(scanner_env),
            start_new_session=True,
            # A job killed outright (SIGKILL, OOM) takes its scanner with it.
            preexec_fn=lambda: die_with_parent(signal.SIGKILL),
        )
    except OSError as exc:
        message = f"could not start {argv[0]}: {exc.strerror or exc}"
        console.line(Stream.STDERR, f"[jetscan] {message}".encode())
        return Scanned(exit_code=EXIT_NOT_STARTED, start_error=message)
    out, err = proc.stdout, proc.stderr
    if out is None or err is None:
        raise RuntimeError("subprocess pipes missing")
    pumps = asyncio.gather(console.pump(out, Stream.STDOUT), console.pump(err, Stream.STDERR))
    exited = asyncio.ensure_future(proc.wait())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait(
            {exited, stopping}, timeout=env.deadline_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        finished = exited.done()
        if not finished:
            await _terminate(proc, grace)
    finally:
        stopping.cancel()
        # Whatever the scanner left running in its group dies with it, so no pipe stays open.
        _kill_group(proc.pid, signal.SIGKILL)
        returncode = await proc.wait()
        try:
            await asyncio.wait_for(pumps, grace)
        except TimeoutError:
            log.warning("scan %s: scanner pipes still open after it exited", env.scan_id)
    return Scanned(
        exit_code=exit_status(returncode),
        deadline_hit=not finished and not stop.is_set(),
        stopped=not finished and stop.is_set(),
    )


def _nameservers(env: JobEnv) -> tuple[tuple[str, int], ...]:
    """Where the target's name is resolved: the tool's own nameservers, if it has any (DNS
    recon), else the job's (`JETSCAN_RESOLVERS`), else the system's."""
    configured = getattr(env.config, "resolvers", ()) or env.resolvers
    return tuple(nameserver(text) for text in configured)


async def _terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        log.warning("scanner %d ignored SIGTERM for %s s; killing it", proc.pid, grace)
    _kill_group(proc.pid, signal.SIGKILL)
    await proc.wait()


def _kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _start_heartbeat(js: JetStreamContext, scan_id: str, every: float) -> asyncio.Task[None]:
    """Beat once before the scanner starts, then every `every` seconds in a task."""

    async def beat() -> None:
        try:
            kv = await js.key_value(HEARTBEATS)
            value = Heartbeat(scan_id=scan_id, at=_now(), pid=os.getpid())
            await kv.put(scan_id, wire.encode(value))
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("scan %s: heartbeat failed: %r", scan_id, exc)

    async def beat_forever() -> None:
        while True:
            await asyncio.sleep(every)
            await beat()

    await beat()
    return asyncio.create_task(beat_forever())


def _now() -> datetime:
    return datetime.now(UTC)


if __name__ == "__main__":
    sys.exit(main())
