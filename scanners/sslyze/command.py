"""The sslyze argv for one validated config and target. Pure: no process is started here."""

from __future__ import annotations

import sys

from scanners.context import JobContext
from scanners.errors import TargetError
from scanners.sslyze.config import ScanCommand, SslyzeConfig
from scanners.targets import Target, TargetKind, parse_target

JSON_OUTPUT = "sslyze.json"
TARGET_KINDS = frozenset({TargetKind.HOST, TargetKind.IP, TargetKind.ENDPOINT})
DEFAULT_PORT = 443
# sslyze's CLI flag for each scan command, in the order sslyze's help lists them.
_FLAGS: dict[ScanCommand, str] = {
    "certificate_info": "--certinfo",
    "ssl_2_0_cipher_suites": "--sslv2",
    "ssl_3_0_cipher_suites": "--sslv3",
    "tls_1_0_cipher_suites": "--tlsv1",
    "tls_1_1_cipher_suites": "--tlsv1_1",
    "tls_1_2_cipher_suites": "--tlsv1_2",
    "tls_1_3_cipher_suites": "--tlsv1_3",
    "heartbleed": "--heartbleed",
    "robot": "--robot",
    "openssl_ccs_injection": "--openssl_ccs",
    "tls_compression": "--compression",
    "session_renegotiation": "--reneg",
    "tls_fallback_scsv": "--fallback",
    "tls_1_3_early_data": "--early_data",
}


def build_argv(config: SslyzeConfig, target: Target, job: JobContext) -> list[str]:
    """`python -m sslyze` with JSON to `workdir/sslyze.json` and its human console on stdout.

    Choices that are not config:
    - The interpreter is the job's own (`sys.executable`), where the image installs sslyze,
      unless `JETSCAN_PROGRAMS` names a `python` for it. Running the CLI rather than the
      Python API keeps sslyze in a child process the job can stop at its deadline and whose
      console it streams.
    - `--mozilla_config=disable`: the Mozilla profile check only changes the exit code (1 for
      any non-compliant server, such as every self-signed one), and jetscan's findings judge
      the same facts. With it disabled sslyze exits 0 whenever it ran, so any other code is a
      failure. Disabling it also schedules nothing, hence every scan command is named.
    - The target always carries its port (443 unless the target names one), and follows `--`
      so that it can never be read as an option.
    - A hostname carries the address the job checked (`host:port{ip}`, sslyze's syntax): sslyze
      connects there and does not resolve the name again; the name stays the SNI and the
      name the certificate is checked against.
    """
    checked = _recheck(target)
    port = checked.port or DEFAULT_PORT
    host = f"[{checked.host}]" if ":" in checked.host else checked.host
    argv = [
        job.programs.get("python") or sys.executable,
        "-m",
        "sslyze",
        "--mozilla_config=disable",
        "--json_out",
        str(job.workdir / JSON_OUTPUT),
    ]
    argv += [_FLAGS[command] for command in config.scan_commands]
    if config.server_name is not None:
        argv += ["--sni", config.server_name]
    if config.starttls is not None:
        argv += ["--starttls", config.starttls]
    if config.slow_connection:
        argv.append("--slow_connection")
    server = f"{host}:{port}"
    if job.pinned:
        ip = parse_target(job.pinned, allowed_kinds=frozenset({TargetKind.IP})).value
        server += f"{{[{ip}]}}" if ":" in ip else f"{{{ip}}}"
    argv += ["--", server]
    return argv


def _recheck(target: Target) -> Target:
    # A Target decoded from a message never went through `parse_target`.
    checked = parse_target(target.value, allowed_kinds=TARGET_KINDS)
    if checked != target:
        raise TargetError("target", f"{target.value!r} is not in normalised form")
    return checked
