"""The nmap argv for one validated config and target. Pure: no process is started here."""

from __future__ import annotations

from scanners.context import JobContext
from scanners.errors import TargetError
from scanners.nmap.config import NmapConfig
from scanners.targets import Target, TargetKind, parse_target

XML_OUTPUT = "nmap.xml"
TARGET_KINDS = frozenset({TargetKind.HOST, TargetKind.IP, TargetKind.CIDR})


def build_argv(config: NmapConfig, target: Target, job: JobContext) -> list[str]:
    """nmap's argv: XML to `workdir/nmap.xml`, a verbose human console on stdout.

    Choices that are not config:
    - `-Pn` for a single host or address: the request names a host to scan, and letting a
      firewall that drops pings turn that into "host down, 0 ports" would hide open ports.
      A CIDR keeps host discovery so a /24 does not probe every port of 256 empty addresses.
    - `-6` whenever the target is an IPv6 address or network; nmap refuses them without it.
    - `-sS` needs raw sockets, i.e. a job running as root with CAP_NET_RAW; the image runs as a
      non-root user, so a syn scan is the launcher's decision to run that job as root. Without
      that nmap stops at once with "requires root privileges", which the job reports as a
      failure. (A file capability on nmap would instead make even connect scans fail to exec
      wherever NET_RAW is dropped, as in Kubernetes' restricted profile.)
    - `--noninteractive` so nmap never reads keypresses from a terminal it may be attached to.
    - A hostname is scanned at the address the job checked (`job.pinned`), not resolved by
      nmap again: the name stays the scan's target, and findings were always keyed by address.
    nmap has no `--` separator, so the target cannot be fenced off from options; instead it is
    re-parsed here (a Target decoded from a message never went through `parse_target`).
    """
    checked = _recheck(target)
    argv = [
        job.program("nmap"),
        "-oX",
        str(job.workdir / XML_OUTPUT),
        "--no-stylesheet",
        "-v",
        "--noninteractive",
        # Progress lines keep the live console moving during long phases such as -sV.
        "--stats-every",
        "30s",
    ]
    argv.append("-sT" if config.scan_type == "connect" else "-sS")
    argv.append(f"-T{config.timing}")
    if checked.kind is not TargetKind.CIDR:
        argv.append("-Pn")
    if config.ports is not None:
        argv += ["-p", config.ports]
    if config.service_detection:
        argv.append("-sV")
    if config.scripts:
        argv.append("--script=" + ",".join(config.scripts))
    if config.host_timeout_seconds is not None:
        argv += ["--host-timeout", f"{config.host_timeout_seconds}s"]
    if not config.reverse_dns:
        argv.append("-n")
    value = checked.value
    if checked.kind is TargetKind.HOST and job.pinned:
        value = _recheck_address(job.pinned)
    if (checked.kind is not TargetKind.HOST or job.pinned) and ":" in value:
        argv.append("-6")
    argv.append(value)
    return argv


def _recheck_address(address: str) -> str:
    pinned = parse_target(address, allowed_kinds=frozenset({TargetKind.IP}))
    return pinned.value


def _recheck(target: Target) -> Target:
    # Size limits are the caller's policy and were applied when the target was accepted;
    # this check is about syntax, so it allows any prefix length.
    checked = parse_target(
        target.value, allowed_kinds=TARGET_KINDS, ipv4_min_prefix=0, ipv6_min_prefix=0
    )
    if checked.value != target.value or checked.kind is not target.kind:
        raise TargetError("target", f"{target.value!r} is not in normalised form")
    return checked
