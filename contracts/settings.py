"""Process settings: one frozen Struct built once from `JETSCAN_*` variables.

The process environment is read only by entry points, which pass it in, so tests and
the embedded stack build settings without touching the real environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path

import msgspec

from contracts.jobs import DEFAULT_CONSOLE_MAX_BYTES

PREFIX = "JETSCAN_"
ROLES = ("edge", "launcher", "ingest", "scheduler", "reports", "queries")
EXECUTORS = ("local", "kubernetes")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
# The standard OpenTelemetry variable (no JETSCAN_ prefix): where spans go over OTLP/HTTP.
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "XDG_RUNTIME_DIR")


class SettingsError(Exception):
    """A `JETSCAN_*` variable holds a value jetscan cannot use."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


class Address(msgspec.Struct, frozen=True):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class Rate(msgspec.Struct, frozen=True):
    """`limit` calls per `period` seconds, with a burst of `limit`; a limit of 0 is off."""

    limit: int
    period: float

    def __str__(self) -> str:
        unit = next((u for u, p in _PERIODS.items() if p == self.period), None)
        return f"{self.limit}/{unit}" if unit else f"{self.limit} per {self.period:g}s"


def rate(variable: str, text: str) -> Rate:
    """`N/s`, `N/m` or `N/h` (N calls per second, minute or hour), or `off`."""
    if text == "off":
        return Rate(0, 1.0)
    count, _, unit = text.partition("/")
    if not (count.isascii() and count.isdigit() and 0 < int(count) <= 1_000_000) or (
        unit not in _PERIODS
    ):
        raise SettingsError(variable, f"expected N/s, N/m, N/h or off, got {text!r}")
    return Rate(int(count), _PERIODS[unit])


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    home: Path
    grpc_addr: Address
    http_addr: Address
    nats_url: str = ""
    database_url: str = ""
    nats_port: int = 4222
    scope: str = "localhost,127.0.0.0/8"
    executor: str = "local"
    log_level: str = "INFO"
    token: str = ""
    public_url: str = ""
    # A running scan silent for this long is failed as lost; a launching one gets
    # `launch_timeout` to send its first heartbeat.
    heartbeat_timeout: float = 15.0
    launch_timeout: float = 120.0
    # Per token, at each edge: StartScan and GenerateReport calls (see edge.ratelimit).
    start_rate: Rate = Rate(600, 60.0)
    report_rate: Rate = Rate(60, 60.0)
    # Line text one scan's console may publish; past it the console is cut with a marker.
    console_max_bytes: int = DEFAULT_CONSOLE_MAX_BYTES
    # The non-jetscan variables a scan job inherits (PATH, locale, TMPDIR, HOME).
    passthrough: dict[str, str] = {}
    # Where the scan jobs find external programs (`zap.sh`, `subfinder`, `dnsx`, `nmap`),
    # from `JETSCAN_PROGRAMS=name=/path,name=/path`; a program not named is found on PATH.
    programs: dict[str, str] = {}
    # `/healthz` and `/readyz` of a role without a web server (`jetscan run ROLE`); none: off.
    health_addr: Address | None = None
    # `jetscan up`'s Prometheus `/metrics`, apart from the public web address.
    metrics_addr: Address = Address("127.0.0.1", 9464)
    # `text` for a terminal, `json` (one object per line) for a log pipeline.
    log_format: str = "text"
    # OTLP/HTTP base URL for traces; empty: tracing off, at no cost.
    otlp_endpoint: str = ""
    # The Kubernetes executor (`executor="kubernetes"`): the namespace of the scan Jobs, the
    # image per tool (a tool not named runs jetscan's published image), the Secret holding the
    # jobs' NATS credentials (key `nats.creds`; none: jobs connect without), the kubeconfig
    # (none: the in-cluster service account), how long finished Jobs are kept, and how long a
    # Job may fail to pull its image before the scan is failed.
    k8s_namespace: str = "jetscan"
    k8s_images: dict[str, str] = {}
    k8s_nats_creds_secret: str = ""
    k8s_kubeconfig: str = ""
    k8s_job_ttl_seconds: int = 3600
    k8s_image_pull_wait: float = 300.0
    # Whether raw-socket scans (nmap syn) may run: their Job needs root with NET_RAW, which
    # only a namespace at Pod Security `privileged` admits. Off: such scans fail at once.
    k8s_raw_sockets: bool = False
    # NATS credentials: a `.creds` file, or a folder of `<role>.creds` (what `jetscan up`
    # makes under JETSCAN_HOME/nats-auth/creds); none: connect without (an open server).
    nats_creds: str = ""
    # The launcher's key for signing each scan job's own short-lived NATS user
    # (`job-signer.json`); none: jobs get no credentials of their own.
    nats_job_signer: str = ""
    # The local executor runs each job as this unprivileged user (created by `jetscan up` when
    # run as root), with no new privileges and resource limits; "" (the default of a Settings
    # built in code, as the tests' stack does): jobs run as jetscan, unconfined.
    job_user: str = ""
    job_memory_mb: int = 2048
    # TLS: the edge serves gRPC and HTTP with this certificate and key (both or neither);
    # the CLI verifies the edge against this CA. Paths; none: plaintext.
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    # Admission (`handlers/launcher/admission.py`): jobs running at once across every
    # launcher, jobs of one tool on one target at once (0: no limit; `JETSCAN_MAX_PER_TARGET`
    # defaults to 1), and launches of a scan whose job jetscan lost (1: no retry). The Struct's
    # defaults are for settings built in code (the tests' stack); `load` has the machine's.
    max_running: int = 16
    max_per_target: int = 0
    max_attempts: int = 2
    # A portal session unused for this long is over (`JETSCAN_PORTAL_IDLE_MINUTES`, whole
    # minutes; a fraction here lets a test stand for a long wait).
    portal_idle_minutes: float = 30.0
    # Seconds added to the database's clock by the scheduler: lets a test stand for a
    # scheduler that was down for a while. No variable sets it.
    scheduler_clock_offset: float = 0.0

    def __repr__(self) -> str:
        redacted = {
            f: ("***" if f in _SECRETS and getattr(self, f) else getattr(self, f))
            for f in self.__struct_fields__
        }
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in redacted.items()) + ")"

    __str__ = __repr__

    @property
    def embedded_nats(self) -> bool:
        return not self.nats_url

    @property
    def embedded_database(self) -> bool:
        return not self.database_url

    @property
    def admin_token_path(self) -> Path:
        return self.home / "admin.token"

    @property
    def nats_auth_dir(self) -> Path:
        """Where `jetscan up` keeps its NATS keys and credentials."""
        return self.home / "nats-auth"

    def nats_creds_for(self, principal: str) -> str:
        """The `.creds` file `principal` (a role, or `admin`) connects with; "" for none."""
        if not self.nats_creds:
            return ""
        path = Path(self.nats_creds)
        return str(path / f"{principal}.creds") if path.is_dir() else str(path)


_SECRETS = frozenset({"database_url", "token"})
_HOSTPORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$"
)


def parse_address(variable: str, text: str) -> Address:
    m = _HOSTPORT.match(text.strip())
    if not m:
        raise SettingsError(variable, f"expected HOST:PORT (or [IPV6]:PORT), got {text!r}")
    host = m["v6"] or m["host"]
    if m["v6"]:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SettingsError(variable, f"{host!r} is not an IPv6 address") from None
    port = int(m["port"])
    if not 0 <= port <= 65535:
        raise SettingsError(variable, f"port {port} is out of range 0-65535")
    return Address(host, port)


def _port(variable: str, text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise SettingsError(variable, f"expected a port number 0-65535, got {text!r}")
    return int(text)


def _seconds(variable: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise SettingsError(variable, f"expected seconds between 0 and 86400, got {text!r}")
    return value


def _choice(variable: str, text: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise SettingsError(variable, f"expected one of {', '.join(allowed)}, got {text!r}")
    return text


def _url(variable: str, text: str, schemes: tuple[str, ...]) -> str:
    if text and not text.startswith(tuple(s + "://" for s in schemes)):
        raise SettingsError(variable, f"expected a {'/'.join(schemes)}:// URL, got {text!r}")
    return text


_PROGRAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def programs(variable: str, text: str) -> dict[str, str]:
    """`name=/path,...` as a dict; SettingsError(variable, ...) naming the bad item."""
    programs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, path = (x.strip() for x in item.partition("="))
        if not sep or not _PROGRAM_NAME.match(name) or not path.startswith("/"):
            raise SettingsError(
                variable, f"expected NAME=/absolute/path[,NAME=/absolute/path...], got {item!r}"
            )
        programs[name] = path
    return programs


_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
# registry[:port]/path[:tag][@sha256:digest], lower-case path components as OCI requires.
_IMAGE = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


def _dns_name(variable: str, text: str, *, label: bool) -> str:
    pattern, what = (_DNS_LABEL, "a DNS label") if label else (_DNS_SUBDOMAIN, "a DNS name")
    if text and not pattern.match(text):
        raise SettingsError(
            variable, f"expected {what} (lower-case letters, digits, '-'), got {text!r}"
        )
    return text


def images(variable: str, text: str) -> dict[str, str]:
    """`tool=image,...` as a dict; SettingsError(variable, ...) naming the bad item."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tool, sep, image = (x.strip() for x in item.partition("="))
        if not sep or not _PROGRAM_NAME.match(tool) or not _IMAGE.match(image):
            raise SettingsError(
                variable,
                f"expected TOOL=IMAGE[,TOOL=IMAGE...] (IMAGE as registry/name:tag), got {item!r}",
            )
        out[tool] = image
    return out


def _flag(variable: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise SettingsError(variable, f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _whole(variable: str, text: str, low: int, high: int, unit: str = "seconds") -> int:
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise SettingsError(variable, f"expected whole {unit} from {low} to {high}, got {text!r}")
    return int(text)


def _paired(variable: str, text: str, other: str, other_text: str) -> str:
    if bool(text) != bool(other_text):
        raise SettingsError(variable, f"must be set together with {other}")
    return _absolute(variable, text)


def _megabytes(variable: str, text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 256 <= int(text) <= 1 << 20:
        raise SettingsError(variable, f"expected megabytes from 256 to 1048576, got {text!r}")
    return int(text)


def _absolute(variable: str, text: str) -> str:
    if text and not text.startswith("/"):
        raise SettingsError(variable, f"must be an absolute path, got {text!r}")
    return text


def default_max_running(executor: str, cpus: int | None) -> int:
    """`JETSCAN_MAX_RUNNING` when unset: local jobs share this machine's cores (a job mostly
    waits on the network, so two per core, at least 4); Kubernetes Jobs get a cluster's 32."""
    if executor == "kubernetes":
        return 32
    return max(4, 2 * (cpus or 1))


def load(environ: Mapping[str, str], *, cwd: Path | None = None) -> Settings:
    """Build settings from `environ`; raise SettingsError naming the first bad variable."""

    def get(name: str, default: str = "") -> str:
        return environ.get(PREFIX + name, default).strip()

    home = Path(get("HOME", ".jetscan"))
    if not home.is_absolute():
        home = (cwd or Path.cwd()) / home
    executor = _choice("JETSCAN_EXECUTOR", get("EXECUTOR", "local"), EXECUTORS)
    running = str(default_max_running(executor, os.cpu_count()))
    return Settings(
        home=home,
        grpc_addr=parse_address("JETSCAN_GRPC_ADDR", get("GRPC_ADDR", "127.0.0.1:50051")),
        http_addr=parse_address("JETSCAN_HTTP_ADDR", get("HTTP_ADDR", "127.0.0.1:8080")),
        nats_url=_url("JETSCAN_NATS_URL", get("NATS_URL"), ("nats", "tls", "ws", "wss")),
        database_url=_url("JETSCAN_DATABASE_URL", get("DATABASE_URL"), ("postgresql", "postgres")),
        nats_port=_port("JETSCAN_NATS_PORT", get("NATS_PORT", "4222")),
        scope=get("SCOPE", "localhost,127.0.0.0/8"),
        executor=executor,
        log_level=_choice("JETSCAN_LOG_LEVEL", get("LOG_LEVEL", "INFO").upper(), LOG_LEVELS),
        token=get("TOKEN"),
        public_url=_url("JETSCAN_PUBLIC_URL", get("PUBLIC_URL"), ("http", "https")),
        heartbeat_timeout=_seconds("JETSCAN_HEARTBEAT_TIMEOUT", get("HEARTBEAT_TIMEOUT", "15")),
        launch_timeout=_seconds("JETSCAN_LAUNCH_TIMEOUT", get("LAUNCH_TIMEOUT", "120")),
        start_rate=rate("JETSCAN_START_RATE", get("START_RATE", "600/m")),
        report_rate=rate("JETSCAN_REPORT_RATE", get("REPORT_RATE", "60/m")),
        console_max_bytes=_whole(
            "JETSCAN_CONSOLE_MAX_BYTES",
            get("CONSOLE_MAX_BYTES", str(DEFAULT_CONSOLE_MAX_BYTES)),
            64 << 10,
            1 << 40,
            unit="bytes",
        ),
        passthrough={k: environ[k] for k in PASSTHROUGH if k in environ},
        programs=programs("JETSCAN_PROGRAMS", get("PROGRAMS")),
        health_addr=(
            parse_address("JETSCAN_HEALTH_ADDR", get("HEALTH_ADDR")) if get("HEALTH_ADDR") else None
        ),
        metrics_addr=parse_address("JETSCAN_METRICS_ADDR", get("METRICS_ADDR", "127.0.0.1:9464")),
        log_format=_choice("JETSCAN_LOG_FORMAT", get("LOG_FORMAT", "text").lower(), LOG_FORMATS),
        otlp_endpoint=_url(
            OTLP_ENDPOINT, environ.get(OTLP_ENDPOINT, "").strip(), ("http", "https")
        ),
        k8s_namespace=_dns_name(
            "JETSCAN_K8S_NAMESPACE", get("K8S_NAMESPACE") or "jetscan", label=True
        ),
        k8s_images=images("JETSCAN_K8S_IMAGES", get("K8S_IMAGES")),
        k8s_nats_creds_secret=_dns_name(
            "JETSCAN_K8S_NATS_CREDS_SECRET", get("K8S_NATS_CREDS_SECRET"), label=False
        ),
        k8s_kubeconfig=_absolute("JETSCAN_K8S_KUBECONFIG", get("K8S_KUBECONFIG")),
        # At least a minute: the launcher reads the finished Job's pod for its exit code.
        k8s_job_ttl_seconds=_whole(
            "JETSCAN_K8S_JOB_TTL_SECONDS", get("K8S_JOB_TTL_SECONDS", "3600"), 60, 30 * 86400
        ),
        k8s_image_pull_wait=_seconds(
            "JETSCAN_K8S_IMAGE_PULL_WAIT", get("K8S_IMAGE_PULL_WAIT", "300")
        ),
        k8s_raw_sockets=_flag("JETSCAN_K8S_RAW_SOCKETS", get("K8S_RAW_SOCKETS", "false")),
        nats_creds=_absolute("JETSCAN_NATS_CREDS", get("NATS_CREDS")),
        nats_job_signer=_absolute("JETSCAN_NATS_JOB_SIGNER", get("NATS_JOB_SIGNER")),
        job_user=_dns_name("JETSCAN_JOB_USER", get("JOB_USER", "jetscan-job"), label=True),
        job_memory_mb=_megabytes("JETSCAN_JOB_MEMORY_MB", get("JOB_MEMORY_MB", "2048")),
        tls_cert=_paired("JETSCAN_TLS_CERT", get("TLS_CERT"), "JETSCAN_TLS_KEY", get("TLS_KEY")),
        tls_key=_paired("JETSCAN_TLS_KEY", get("TLS_KEY"), "JETSCAN_TLS_CERT", get("TLS_CERT")),
        tls_ca=_absolute("JETSCAN_TLS_CA", get("TLS_CA")),
        max_running=_whole(
            "JETSCAN_MAX_RUNNING", get("MAX_RUNNING", running), 1, 100_000, unit="jobs"
        ),
        max_per_target=_whole(
            "JETSCAN_MAX_PER_TARGET", get("MAX_PER_TARGET", "1"), 0, 100_000, unit="jobs"
        ),
        max_attempts=_whole(
            "JETSCAN_MAX_ATTEMPTS", get("MAX_ATTEMPTS", "2"), 1, 10, unit="attempts"
        ),
        # At most a session's whole life (SESSION_HOURS): longer would never apply.
        portal_idle_minutes=_whole(
            "JETSCAN_PORTAL_IDLE_MINUTES", get("PORTAL_IDLE_MINUTES", "30"), 1, 720, unit="minutes"
        ),
    )
