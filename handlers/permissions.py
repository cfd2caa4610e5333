"""Who may publish and subscribe to what on the bus: one NATS user per role, one per scan job.

Pure: derived from `contracts.subjects` (the subject patterns) and streams.yaml (each role
consumes the durables whose names start with `<role>-`), so a new command under `cmd.>`, a
new query under `query.>` or a new durable of a role needs no change here. docs/architecture.md
has the table as prose; tests/handlers/test_permissions.py runs it against nats-server.

JetStream is driven through its API subjects: a durable pull consumer needs
`$JS.API.CONSUMER.INFO|MSG.NEXT.<stream>.<durable>` and `$JS.ACK.<stream>.<durable>.>`;
a key-value read is a direct get `$JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key>`, a write a
publish to `$KV.<bucket>.<key>`; an object is chunks on `$O.<bucket>.C.<nuid>` and its meta on
`$O.<bucket>.M.<base64url(name)>`. Every client reads replies on its own inbox prefix only
(`_INBOX.role.<role>`, `_INBOX.scan.<scan_id>`), so nobody reads another's replies.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from contracts import subjects
from handlers.natsauth import Permissions
from handlers.topology import Topology

ADMIN = "admin"
TOKENS = "tokens"
TOKENS_USED = "tokens-used"
SESSIONS = "sessions"
LAUNCHES = "launches"
ADMISSION = "admission"
HEARTBEATS = "heartbeats"
ARTIFACTS = "artifacts"
_API = "$JS.API"


def _kv_read(bucket: str) -> list[str]:
    return [f"{_API}.STREAM.INFO.KV_{bucket}", f"{_API}.DIRECT.GET.KV_{bucket}.$KV.{bucket}.>"]


def _kv_write(bucket: str) -> list[str]:
    return [f"$KV.{bucket}.>"]


def _kv_watch(bucket: str) -> list[str]:
    """A KV watch: an ordered consumer with flow control on the bucket's stream."""
    return [
        f"{_API}.STREAM.INFO.KV_{bucket}",
        f"{_API}.CONSUMER.CREATE.KV_{bucket}",
        f"{_API}.CONSUMER.INFO.KV_{bucket}.*",
        f"{_API}.CONSUMER.DELETE.KV_{bucket}.*",
        f"$JS.FC.KV_{bucket}.>",
    ]


def _object_read(bucket: str) -> list[str]:
    stream = f"OBJ_{bucket}"
    return [
        # nats-py finds the stream of the chunks' subject by name lookup first.
        f"{_API}.STREAM.NAMES",
        f"{_API}.STREAM.INFO.{stream}",
        f"{_API}.STREAM.MSG.GET.{stream}",
        f"{_API}.DIRECT.GET.{stream}.>",
        f"{_API}.CONSUMER.CREATE.{stream}",
        f"{_API}.CONSUMER.CREATE.{stream}.>",
        f"{_API}.CONSUMER.INFO.{stream}.*",
        f"{_API}.CONSUMER.DELETE.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _service(role: str) -> list[str]:
    """What a NATS micro service named `jetscan-<role>` listens on ($SRV.PING|INFO|STATS)."""
    name = f"jetscan-{role}"
    return ["$SRV.*", f"$SRV.*.{name}", f"$SRV.*.{name}.>"]


def _consumers(topo: Topology, role: str) -> tuple[list[str], list[str]]:
    """(publish, subscribe) for pulling from and acking on each durable of `role`."""
    pub: list[str] = []
    for c in topo.consumers:
        if c.durable.startswith(f"{role}-"):
            pub += [
                f"{_API}.STREAM.INFO.{c.stream}",
                f"{_API}.CONSUMER.INFO.{c.stream}.{c.durable}",
                f"{_API}.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}",
                f"$JS.ACK.{c.stream}.{c.durable}.>",
            ]
    return pub, []


def _durables_denied(topo: Topology, streams: Iterable[str]) -> list[str]:
    """Only its role pulls from a durable consumer of `streams`; only the admin deletes or
    redefines one."""
    wanted = set(streams)
    denied: list[str] = []
    for c in topo.consumers:
        if c.stream in wanted:
            denied += [
                f"{_API}.CONSUMER.DELETE.{c.stream}.{c.durable}",
                f"{_API}.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}",
                f"{_API}.CONSUMER.CREATE.{c.stream}.{c.durable}",
                f"{_API}.CONSUMER.CREATE.{c.stream}.{c.durable}.>",
                f"{_API}.CONSUMER.DURABLE.CREATE.{c.stream}.{c.durable}",
            ]
    return denied


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def role(name: str, topo: Topology) -> Permissions:
    """The permissions of role `name` (one of contracts.settings.ROLES, or `admin`)."""
    if name == ADMIN:
        # Setup and the operator's CLI: streams, consumers, buckets, tokens.
        return Permissions(pub_allow=(">",), sub_allow=(">",), responses=True)
    pub, sub = _consumers(topo, name)
    pub += ["$JS.API.INFO"]
    sub += [subjects.role_inbox(name) + ".>", *_service(name)]
    deny: list[str] = []
    if name == "edge":
        pub += [
            subjects.COMMANDS,
            subjects.QUERIES,
            # Audit records of the doors it serves (RPCs, the web UI), and of no other.
            subjects.audit_from("grpc"),
            subjects.audit_from("ui"),
            subjects.SERVICE_PING + ".*",
            *_kv_read(TOKENS),
            f"{_API}.STREAM.INFO.KV_{TOKENS_USED}",
            *_kv_write(TOKENS_USED),
            # Portal sign-ins: read on every page, written at sign-in, deleted at sign-out;
            # the overview shows running scans' last heartbeats.
            *_kv_read(SESSIONS),
            *_kv_write(SESSIONS),
            *_kv_read(HEARTBEATS),
            # The token cache watches the bucket: an ordered consumer with flow control.
            f"{_API}.CONSUMER.CREATE.KV_{TOKENS}",
            f"{_API}.CONSUMER.INFO.KV_{TOKENS}.*",
            f"{_API}.CONSUMER.DELETE.KV_{TOKENS}.*",
            f"$JS.FC.KV_{TOKENS}.>",
            # Live consoles: an ephemeral consumer per viewer on OUTPUT and EVENTS, and the
            # last line of a console.
            *(f"{_API}.CONSUMER.{verb}.{s}" for s in ("OUTPUT", "EVENTS") for verb in ("CREATE",)),
            *(f"{_API}.CONSUMER.{v}.{s}.*" for s in ("OUTPUT", "EVENTS") for v in ("MSG.NEXT",)),
            *(f"{_API}.CONSUMER.DELETE.{s}.*" for s in ("OUTPUT", "EVENTS")),
            f"{_API}.STREAM.MSG.GET.OUTPUT",
            # Report downloads: a report's file from the object store (meta, then its chunks
            # through an ordered consumer).
            *_object_read(ARTIFACTS),
            # Readiness: the streams exist.
            *(f"{_API}.STREAM.INFO.{s.name}" for s in topo.streams),
        ]
        deny += _durables_denied(topo, ("OUTPUT", "EVENTS"))
    elif name == "launcher":
        pub += [
            subjects.SCAN_EVENTS,
            "query.scan.*",
            *_kv_read(LAUNCHES),
            *_kv_write(LAUNCHES),
            # The admission queue: read, compare-and-set, and a watch mirroring it.
            *_kv_read(ADMISSION),
            *_kv_write(ADMISSION),
            *_kv_watch(ADMISSION),
            # Reading one key (the buckets are not made with direct get).
            f"{_API}.STREAM.MSG.GET.KV_{LAUNCHES}",
            f"{_API}.STREAM.MSG.GET.KV_{ADMISSION}",
            # Old delete markers of the queue's keys are purged (handlers.launcher.queue).
            f"{_API}.STREAM.PURGE.KV_{ADMISSION}",
            # A retry's start command, and where its console continues.
            f"{_API}.STREAM.MSG.GET.COMMANDS",
            f"{_API}.STREAM.MSG.GET.OUTPUT",
        ]
    elif name == "ingest":
        pub += [
            subjects.SCAN_EVENTS,
            f"{_API}.STREAM.MSG.GET.COMMANDS",
            # Whether a silent scan's end is on the bus before failing it as lost.
            f"{_API}.STREAM.MSG.GET.EVENTS",
            *_kv_read(HEARTBEATS),
            # The parked-messages gauge (handlers.backlog).
            f"{_API}.STREAM.INFO.PARKED",
        ]
    elif name == "queries":
        pub += [f"{_API}.STREAM.MSG.GET.COMMANDS", *_kv_watch(ADMISSION)]
        sub += [subjects.QUERIES]
    elif name == "scheduler":
        pub += [subjects.SCAN_COMMANDS, "evt.schedule.>", subjects.QUERIES]
    elif name == "reports":
        pub += [
            subjects.REPORT_EVENTS,
            subjects.QUERIES,
            f"$O.{ARTIFACTS}.>",
            f"{_API}.STREAM.INFO.OBJ_{ARTIFACTS}",
            f"{_API}.STREAM.MSG.GET.OBJ_{ARTIFACTS}",
            # A redelivered command stores its files again: the old chunks are purged.
            f"{_API}.STREAM.PURGE.OBJ_{ARTIFACTS}",
        ]
    else:
        raise ValueError(f"no permissions for role {name!r}")
    return Permissions(
        pub_allow=_unique(pub),
        pub_deny=_unique(deny),
        sub_allow=_unique(sub),
        responses=True,
    )


def object_meta_subject(bucket: str, name: str) -> str:
    return f"$O.{bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


def object_chunk_subject(bucket: str, nuid: str) -> str:
    return f"$O.{bucket}.C.{subjects.token(nuid)}"


DATA_ARTIFACT = "result-data.json"


def artifact_name(scan_id: str, file: str) -> str:
    """The object holding a scan's raw `file`."""
    return f"scans/{subjects.token(scan_id)}/{file}"


def artifact_nuid(scan_id: str, index: int) -> str:
    """The chunk subject token of a scan's `index`-th artifact: named, so a job's permission
    can name it, where the object store would pick a random one."""
    return f"{subjects.token(scan_id)}_{index}"


def job(scan_id: str, tool: str, output_file: str) -> Permissions:
    """One scan job: its console, its result, its running event and heartbeat, its raw output
    (`output_file`) and oversized tool data objects; nothing else, and no reading but
    the heartbeat bucket's configuration (`key_value()` asks for it)."""
    artifacts = (artifact_name(scan_id, output_file), artifact_name(scan_id, DATA_ARTIFACT))
    pub = [
        subjects.scan_output(scan_id),
        subjects.scan_event(scan_id, "running"),
        subjects.scan_result(tool, scan_id),
        f"$KV.{HEARTBEATS}.{subjects.token(scan_id)}",
        f"{_API}.STREAM.INFO.KV_{HEARTBEATS}",
    ]
    for index, name in enumerate(artifacts):
        pub += [
            object_chunk_subject(ARTIFACTS, artifact_nuid(scan_id, index)),
            object_meta_subject(ARTIFACTS, name),
        ]
    return Permissions(
        pub_allow=tuple(pub), sub_allow=(subjects.scan_inbox(scan_id) + ".>",), responses=False
    )
