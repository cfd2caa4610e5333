"""A finished scan's result: judged, stored and published by the scan job (`workers.job`).

The raw output goes to the `artifacts` object store, the parse is spooled to files
(`workers.spool`) and published on `scan.results.<tool>.<scan_id>` in parts, each under a
`Nats-Msg-Id` of (scan, part), so a resent part is dropped by JetStream. The exit codes are
the job's, documented in `workers.job`.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
from nats.js import JetStreamContext, api

from contracts import subjects, tracing, wire
from contracts.coverage import Coverage
from contracts.results import ScanResult, ToolData
from handlers.permissions import DATA_ARTIFACT, artifact_name, artifact_nuid
from scanners import ToolSpec
from scanners.errors import ParseError
from workers.artifacts import put as put_artifact
from workers.jobenv import JobEnv
from workers.spool import Spooled, spool

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_BAD_ENV = 2
EXIT_SCANNER_FAILED = 3
EXIT_BAD_OUTPUT = 4
EXIT_NATS = 5
EXIT_UNREACHED = 6
EXIT_DEADLINE = 124
EXIT_NOT_STARTED = 127
ARTIFACTS = "artifacts"
_PUBLISH_ATTEMPTS = 5
# Well under RESULTS' max_msg_size (8 MiB) and the server's max_payload.
RESULT_PART_BYTES = 4 << 20


class Verdict(msgspec.Struct, frozen=True):
    """What a finished scan amounts to: the job's exit code, the result's error and partial."""

    exit_code: int
    error: str
    partial: bool


class Scanned(msgspec.Struct, frozen=True, kw_only=True):
    """How the scanner process ended: `exit_code` is 128+N for death by signal N."""

    exit_code: int
    start_error: str = ""
    deadline_hit: bool = False
    stopped: bool = False


def judge(
    spec: ToolSpec[Any],
    scanned: Scanned,
    parsed_partial: bool,
    problem: str,
    unreached: str = "",
) -> Verdict:
    """The job's exit code and the result's error and partial flag (see the module docstring).

    `problem` is why the output did not parse (empty when it did); `parsed_partial` whether
    the parser found it cut short; `unreached` why the scan reached nothing."""
    errors = []
    code = EXIT_OK
    if scanned.deadline_hit:
        errors.append(f"{spec.name} was stopped at the scan's deadline")
        code = EXIT_DEADLINE
    elif scanned.start_error:
        errors.append(scanned.start_error)
        code = EXIT_SCANNER_FAILED
    elif scanned.exit_code not in spec.accepted_exit_codes:
        errors.append(f"{spec.name} exited with code {scanned.exit_code}")
        code = EXIT_SCANNER_FAILED
    if problem:
        errors.append(problem)
        code = code or EXIT_BAD_OUTPUT
    if unreached:
        errors.append(unreached)
        code = code or EXIT_UNREACHED
    partial = bool(errors) or parsed_partial
    return Verdict(code, "; ".join(errors), partial)


def empty_data(tool: str) -> ToolData:
    # Annotated: convert() is typed Any for a union type.
    data: ToolData = msgspec.convert({"kind": tool}, ToolData)
    return data


async def finish(
    js: JetStreamContext,
    env: JobEnv,
    workdir: Path,
    scanned: Scanned,
    part_bytes: int = RESULT_PART_BYTES,
) -> int:
    """Store the raw output, parse it, publish the result in parts; return the job's exit
    code (see `workers.job`)."""
    spec = env.spec
    path = workdir / spec.output_file
    spooled: Spooled | None = None
    problem = artifact = ""
    if path.is_file():
        name = artifact_name(env.scan_id, spec.output_file)
        artifact = await store_artifact(js, name, artifact_nuid(env.scan_id, 0), path)
        into = Path(tempfile.mkdtemp(prefix="result-", dir=workdir))
        try:
            spooled = await asyncio.to_thread(_spool_file, spec, path, into, part_bytes)
        except ParseError as exc:
            problem = f"output does not parse: {exc}"
    else:
        problem = f"{spec.name} wrote no {spec.output_file}"
    empty = empty_data(env.tool)
    data, data_artifact = empty, ""
    coverage: Coverage | None = None
    unreached = ""
    if spooled is not None and spooled.data_size > part_bytes:
        # Tool data bigger than a message: every part names it in the object store. (So
        # much data means the scan reached something; its coverage stays unknown, so it
        # fixes nothing.)
        name = artifact_name(env.scan_id, DATA_ARTIFACT)
        data_artifact = await store_artifact(
            js, name, artifact_nuid(env.scan_id, 1), spooled.data_path
        )
    elif spooled is not None:
        data = spooled.data()
        unreached = spec.unreached(data)
        coverage = spec.coverage(env.config, env.target, data)
    verdict = judge(spec, scanned, spooled is not None and spooled.partial, problem, unreached)
    parts = spooled.parts if spooled is not None else 1
    finished_at = datetime.now(UTC)
    for part in range(1, parts + 1):
        result = ScanResult(
            scan_id=env.scan_id,
            tool=env.tool,
            target=env.target.value,
            finished_at=finished_at,
            exit_code=scanned.exit_code,
            partial=verdict.partial,
            findings=spooled.findings(part) if spooled is not None else (),
            # Only the last part carries the tool data.
            data=data if part == parts else empty,
            artifact=artifact,
            error=verdict.error,
            part=part,
            parts=parts,
            data_artifact=data_artifact,
            coverage=coverage if part == parts else None,
            scanner_version=spooled.version if spooled is not None else "",
            attempt=env.attempt,
        )
        # Each attempt's parts are its own (a retry may split its result differently).
        which = f"{part}-of-{parts}" if env.attempt <= 1 else f"{part}-of-{parts}.a{env.attempt}"
        msg_id = subjects.msg_id("result", env.scan_id, which)
        subject = subjects.scan_result(env.tool, env.scan_id)
        with tracing.span("result", scan=env.scan_id):
            sent = await publish(js, subject, wire.encode(result), msg_id)
        if not sent:
            return EXIT_NATS
    log.info("scan %s: result published, exit %d %s", env.scan_id, verdict.exit_code, verdict.error)
    return verdict.exit_code


def _spool_file(spec: ToolSpec[Any], path: Path, into: Path, part_bytes: int) -> Spooled:
    with path.open("rb") as fp:
        return spool(spec, fp, into, part_bytes)


async def store_artifact(js: JetStreamContext, name: str, nuid: str, path: Path) -> str:
    """Put `path` in the object store as `name`, read a chunk at a time; "" if it failed."""
    try:
        await put_artifact(js, ARTIFACTS, name, nuid, path)
    except (OSError, nats.errors.Error) as exc:
        log.error("artifact %s not stored: %r", name, exc)
        return ""
    return name


async def publish(js: JetStreamContext, subject: str, payload: bytes, msg_id: str) -> bool:
    """Publish and wait for the ack, resending under the same id; False if it never lands."""
    for attempt in range(1, _PUBLISH_ATTEMPTS + 1):
        try:
            await js.publish(subject, payload, headers=tracing.inject({api.Header.MSG_ID: msg_id}))
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("publish to %s failed (attempt %d): %r", subject, attempt, exc)
            if isinstance(exc, nats.errors.ConnectionClosedError) or attempt == _PUBLISH_ATTEMPTS:
                break
            await asyncio.sleep(min(2.0**attempt / 4, 5.0))
        else:
            return True
    log.error("could not publish to %s", subject)
    return False
