"""Every role's and every scan job's NATS user against a real nats-server in operator mode.

The stack runs here exactly as `jetscan up` runs it (its own NATS and PostgreSQL, the
credentials `workers.natscreds` makes): a scan that succeeds end to end shows each role can
do its job; then each user is refused, with a permissions violation, what it must not do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
from grpclib.client import Channel
from nats.aio.client import Client

from contracts import subjects
from contracts.gen.jetscan import v1
from contracts.scans import StartScan
from contracts.settings import ROLES, Address, Settings
from handlers import natsauth, permissions
from handlers.launcher import jobcreds
from handlers.natsauth import Signer
from tests.conftest import all_findings, free_port, wait_status
from tests.edge.test_live import watch
from tests.handlers.test_lifecycle import nmap_request
from workers.stack import up, wait_listening

pytestmark = pytest.mark.slow


class Secured:
    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url
        self.creds = settings.nats_auth_dir / "creds"
        self.admin_token = settings.admin_token_path.read_text().strip()

    def log(self) -> str:
        return (self.settings.home / "nats" / "nats.log").read_text(errors="replace")


@pytest.fixture(scope="module")
async def secured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Secured]:
    home = tmp_path_factory.mktemp("secured")
    settings = Settings(
        home=home,
        grpc_addr=Address("127.0.0.1", free_port()),
        http_addr=Address("127.0.0.1", free_port()),
        nats_port=0,
        launch_timeout=20.0,
        passthrough={k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ},
        # As `jetscan up` runs for real: jobs confined to their own user (which must then
        # read the credentials file the launcher wrote for it), where that is possible.
        job_user="jetscan-job" if os.geteuid() == 0 else "",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(up(settings, stop))
    try:
        await wait_listening(settings.grpc_addr, timeout=60)
        url = (home / "nats.url").read_text().strip()
        yield Secured(settings, url)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


class Errors:
    """A connection's asynchronous errors, where nats-server's refusals arrive."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_error(self, exc: Exception) -> None:
        self.seen.append(str(exc).lower())

    async def violation(self, what: str, within: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        # nats-py lower-cases the server's message.
        what = what.lower()
        while not any("permissions violation" in s and what in s for s in self.seen):
            assert loop.time() < deadline, f"no violation for {what!r}; errors: {self.seen}"
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def connected(
    url: str, creds: Path | str, inbox: str
) -> AsyncIterator[tuple[Client, Errors]]:
    errors = Errors()
    nc = await nats.connect(
        url,
        user_credentials=str(creds),
        inbox_prefix=inbox,
        error_cb=errors.on_error,
        allow_reconnect=False,
    )
    try:
        yield nc, errors
    finally:
        await nc.close()


async def test_creds_are_private_files(secured: Secured) -> None:
    for role in (*ROLES, "admin"):
        path = secured.creds / f"{role}.creds"
        assert path.stat().st_mode & 0o777 == 0o600
    assert (secured.creds / "job-signer.json").stat().st_mode & 0o777 == 0o600
    assert secured.creds.stat().st_mode & 0o777 == 0o700
    assert (secured.settings.nats_auth_dir / "keys").stat().st_mode & 0o777 == 0o700


async def handshake(url: str, creds: str | None) -> str:
    """The server's answer to a CONNECT (as `creds`' user, or anonymous) and a PING: `PONG`,
    or its `-ERR`. The protocol by hand: a refused nats-py connect leaves sockets behind."""
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        info = json.loads((await reader.readline()).decode().removeprefix("INFO "))
        options: dict[str, object] = {"verbose": False, "pedantic": False, "protocol": 1}
        if creds is not None:
            key = natsauth.KeyPair(creds.split("-----BEGIN USER NKEY SEED-----\n")[1].split()[0])
            signature = key.sign(info["nonce"].encode())
            options |= {
                "jwt": natsauth.creds_jwt(creds),
                "sig": base64.urlsafe_b64encode(signature).decode().rstrip("="),
            }
        writer.write(f"CONNECT {json.dumps(options)}\r\nPING\r\n".encode())
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_anonymous_and_unknown_users_are_refused(secured: Secured) -> None:
    assert await handshake(secured.url, None) == "-ERR 'Authorization Violation'"
    # A user signed by a key the server does not trust.
    stranger = natsauth.KeyPair.create("account")
    everything = natsauth.Permissions(pub_allow=(">",), sub_allow=(">",))
    creds = natsauth.new_user(stranger, "x", everything, account=stranger.public)
    assert await handshake(secured.url, creds) == "-ERR 'Authorization Violation'"
    # The same handshake with a real role's credentials is accepted.
    edge = (secured.creds / "edge.creds").read_text()
    assert await handshake(secured.url, edge) == "PONG"


async def test_a_scan_runs_end_to_end_with_each_role_on_its_own_user(
    secured: Secured, open_port: int
) -> None:
    addr = secured.settings.grpc_addr
    channel = Channel(addr.host, addr.port)
    try:
        scans = v1.ScanServiceStub(
            channel, metadata={"authorization": f"Bearer {secured.admin_token}"}, timeout=15
        )
        started = await scans.start_scan(nmap_request(open_port))
        await wait_status(scans, started.id, {v1.ScanStatus.SUCCEEDED})
        findings = await all_findings(scans, started.id)
        assert any(f.port == open_port for f in findings)
    finally:
        channel.close()
    # The console, replayed through the edge's WebSocket bridge (its consumers on OUTPUT).
    url = f"ws://{secured.settings.http_addr}/ws/scans/{started.id}"
    frames, code = await watch(url, secured.admin_token)
    assert code == 1000
    assert any(f["type"] == "line" for f in frames)
    # The job wrote its raw output with its own user; the admin reads it back, digest checked.
    async with connected(secured.url, secured.creds / "admin.creds", "_INBOX") as (nc, _):
        store = await nc.jetstream().object_store("artifacts")
        obj = await store.get(f"scans/{started.id}/nmap.xml")
        assert obj.data is not None and b"<nmaprun" in obj.data
    assert "Violation" not in secured.log()


# (role, what, subject): a publish or subscribe each role must be refused.
REFUSED = [
    ("edge", "publish", "evt.scan.s1.succeeded"),
    ("edge", "publish", "scan.output.s1"),
    ("edge", "publish", "scan.results.nmap.s1"),
    ("edge", "publish", "$KV.tokens.k1"),
    ("edge", "publish", "$JS.API.STREAM.DELETE.COMMANDS"),
    ("edge", "publish", "$JS.API.CONSUMER.DELETE.OUTPUT.ingest-output"),
    ("edge", "publish", "evt.audit.cli.token-revoke"),
    ("edge", "subscribe", "cmd.>"),
    ("edge", "subscribe", "_INBOX.role.queries.x"),
    ("launcher", "publish", "cmd.scan.s1.start"),
    ("launcher", "publish", "scan.results.nmap.s1"),
    ("launcher", "publish", "$KV.tokens.k1"),
    ("launcher", "publish", "$JS.API.DIRECT.GET.KV_tokens.$KV.tokens.k1"),
    ("launcher", "subscribe", "query.>"),
    ("ingest", "publish", "cmd.scan.s1.start"),
    ("ingest", "publish", "$KV.tokens.k1"),
    ("ingest", "publish", "$JS.API.DIRECT.GET.KV_tokens.$KV.tokens.k1"),
    ("ingest", "publish", "$JS.API.STREAM.DELETE.EVENTS"),
    ("ingest", "subscribe", "scan.output.>"),
    ("queries", "publish", "cmd.scan.s1.start"),
    ("queries", "publish", "evt.scan.s1.failed"),
    ("queries", "publish", "$JS.API.DIRECT.GET.KV_tokens.$KV.tokens.k1"),
    ("scheduler", "publish", "evt.scan.s1.succeeded"),
    ("scheduler", "publish", "$KV.tokens.k1"),
    ("reports", "publish", "cmd.scan.s1.start"),
    ("reports", "publish", "evt.scan.s1.failed"),
]


async def _refused(nc: Client, errors: Errors, what: str, subject: str) -> None:
    if what == "publish":
        await nc.publish(subject, b"{}")
    else:
        await nc.subscribe(subject)
    await nc.flush()
    await errors.violation(
        f'{"publish to" if what == "publish" else "subscription to"} "{subject}"'
    )


@pytest.mark.parametrize(("role", "what", "subject"), REFUSED)
async def test_each_role_is_refused_what_it_must_not_do(
    secured: Secured, role: str, what: str, subject: str
) -> None:
    inbox = subjects.role_inbox(role)
    async with connected(secured.url, secured.creds / f"{role}.creds", inbox) as (nc, errors):
        await _refused(nc, errors, what, subject)


def _job_creds(
    secured: Secured, scan_id: str, tmp_path: Path, deadline: int = 60, grace: float = 5
) -> Path:
    signer = Signer.load(secured.creds / "job-signer.json")
    cmd = StartScan(
        scan_id=scan_id,
        tool="nmap",
        target="127.0.0.1",
        domain="127.0.0.1",
        config={},
        deadline_seconds=deadline,
        requested_by="test",
        requested_at=datetime.now(UTC),
    )
    path = tmp_path / f"{scan_id}.creds"
    path.write_text(jobcreds.issue(signer, cmd, grace))
    return path


JOB_REFUSED = [
    ("publish", "scan.output.{other}"),
    ("publish", "scan.results.nmap.{other}"),
    ("publish", "scan.results.zap.{own}"),
    ("publish", "evt.scan.{own}.succeeded"),
    ("publish", "evt.scan.{other}.running"),
    ("publish", "$KV.heartbeats.{other}"),
    ("publish", "$KV.tokens.k1"),
    ("publish", "cmd.scan.{own}.start"),
    ("publish", "$O.artifacts.M.c2NhbnMvb3RoZXIvbm1hcC54bWw="),
    ("publish", "$JS.API.DIRECT.GET.KV_tokens.$KV.tokens.k1"),
    ("publish", "$JS.API.STREAM.MSG.GET.COMMANDS"),
    ("publish", "$JS.API.CONSUMER.CREATE.COMMANDS"),
    ("publish", "$JS.API.STREAM.MSG.GET.OBJ_artifacts"),
    ("subscribe", "cmd.>"),
    ("subscribe", "scan.output.{other}"),
    ("subscribe", "_INBOX.role.edge.>"),
]


@pytest.mark.parametrize(("what", "pattern"), JOB_REFUSED)
async def test_a_jobs_user_is_refused_everything_but_its_own_scan(
    secured: Secured, tmp_path: Path, what: str, pattern: str
) -> None:
    own, other = uuid.uuid4().hex, uuid.uuid4().hex
    creds = _job_creds(secured, own, tmp_path)
    subject = pattern.format(own=own, other=other)
    async with connected(secured.url, creds, subjects.scan_inbox(own)) as (nc, errors):
        await _refused(nc, errors, what, subject)


async def test_a_jobs_user_publishes_its_own_console_and_result(
    secured: Secured, tmp_path: Path
) -> None:
    own = uuid.uuid4().hex
    creds = _job_creds(secured, own, tmp_path)
    async with connected(secured.url, creds, subjects.scan_inbox(own)) as (nc, errors):
        js = nc.jetstream()
        for subject in (subjects.scan_output(own), subjects.scan_result("nmap", own)):
            ack = await js.publish(subject, b"{}", timeout=5)
            assert ack.stream in ("OUTPUT", "RESULTS")
        assert errors.seen == []


async def test_a_jobs_user_stops_working_at_its_expiry(secured: Secured, tmp_path: Path) -> None:
    own = uuid.uuid4().hex
    signer = Signer.load(secured.creds / "job-signer.json")
    creds = tmp_path / "short.creds"
    allowed = permissions.job(own, "nmap", "nmap.xml")
    creds.write_text(signer.issue("short", allowed, expires=time.time() + 2))
    errors = Errors()
    nc = await nats.connect(
        secured.url,
        user_credentials=str(creds),
        inbox_prefix=subjects.scan_inbox(own),
        error_cb=errors.on_error,
        allow_reconnect=False,
    )
    try:
        await nc.jetstream().publish(subjects.scan_output(own), b"{}", timeout=5)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not nc.is_closed:
            assert loop.time() < deadline, "the server kept an expired user connected"
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
    # The server compares whole seconds: for the rest of the expiry second it still admits.
    deadline = loop.time() + 3
    # Admitted, or admitted and cut off at once, until that second is over; then refused.
    refused = "-ERR 'Authorization Violation'"
    while (answer := await handshake(secured.url, creds.read_text())) != refused:
        assert answer in ("PONG", "-ERR 'User Authentication Expired'"), answer
        assert loop.time() < deadline, "an expired user is still admitted"
        await asyncio.sleep(0.1)


async def test_a_kubernetes_job_runs_on_its_own_user_and_nothing_else(
    secured: Secured, tmp_path: Path, open_port: int
) -> None:
    # The Kubernetes executor alone (the fake API server runs its Jobs), on this secured bus:
    # the Job has no credentials but the ones the executor put in its Secret.
    from handlers.launcher import manifest
    from handlers.launcher.kubernetes import KubernetesExecutor
    from tests.handlers.k8s_fake import FakeCluster
    from tests.handlers.test_kubernetes_executor import Endings, nmap

    fake = FakeCluster(
        tmp_path / "nodes", base_env=secured.settings.passthrough, token=uuid.uuid4().hex
    )
    async with fake.running():
        settings = msgspec.structs.replace(
            secured.settings,
            executor="kubernetes",
            nats_url=secured.url,
            nats_creds="",
            nats_job_signer=str(secured.creds / "job-signer.json"),
            k8s_namespace="scans",
            k8s_kubeconfig=str(fake.kubeconfig(tmp_path / "kubeconfig")),
        )
        endings = Endings()
        ex = KubernetesExecutor(settings, endings, None, check_every=0.2, watch_seconds=5)
        await ex.open()
        try:
            cmd = nmap(str(open_port))
            await ex.start(cmd)
            ending = await endings.of(cmd.scan_id, within=90)
        finally:
            await ex.shutdown()
        secret = fake.objects["secrets"][("scans", manifest.secret_name(cmd.scan_id))]
    creds = base64.b64decode(secret["data"]["nats.creds"]).decode()
    claims = natsauth.decode_claims(natsauth.creds_jwt(creds))
    assert claims["name"] == f"scan-{cmd.scan_id}"
    # It published its console, heartbeat, raw output and result (else it exits non-zero)...
    assert ending.returncode == 0
    async with connected(secured.url, secured.creds / "admin.creds", "_INBOX") as (nc, _):
        store = await nc.jetstream().object_store("artifacts")
        obj = await store.get(f"scans/{cmd.scan_id}/nmap.xml")
        assert obj.data is not None and b"<nmaprun" in obj.data
    # ...and was refused nothing on the way.
    violations = [line for line in secured.log().splitlines() if "Violation" in line]
    assert not [line for line in violations if cmd.scan_id in line]
