"""The argvs of a recon run: the job's (the runner) and the runner's (subfinder, dnsx). Pure.

The job runs one argv, so it runs `python -m scanners.dns.recon`, handing it everything as
arguments (the runner reads no environment): the domain, the config as JSON, the deployment
scope and where subfinder and dnsx are (`JETSCAN_PROGRAMS`, else found on PATH by name).
"""

from __future__ import annotations

import sys

import msgspec

from scanners.context import JobContext
from scanners.dns.config import DnsConfig, nameserver
from scanners.errors import TargetError
from scanners.targets import Target, TargetKind, parse_target

OUTPUT = "recon.jsonl"
SUBFINDER_OUTPUT = "subfinder.jsonl"
TARGET_KINDS = frozenset({TargetKind.HOST})
RUNNER = "scanners.dns.recon"


def build_argv(config: DnsConfig, target: Target, job: JobContext) -> list[str]:
    """`python -m scanners.dns.recon ...`, writing `workdir/recon.jsonl`.

    The target is re-parsed here, as for nmap: a Target decoded from a message never went
    through `parse_target`, and its value ends up in subfinder's argv.
    """
    domain = _recheck(target).value
    return [
        sys.executable,
        "-m",
        RUNNER,
        # `--name=value`: a value can never be read as an option, whatever it starts with.
        f"--domain={domain}",
        f"--config={msgspec.json.encode(config).decode()}",
        f"--scope={job.scope}",
        f"--subfinder={job.program('subfinder')}",
        f"--dnsx={job.program('dnsx')}",
        f"--output={job.workdir / OUTPUT}",
    ]


def subfinder_argv(config: DnsConfig, domain: str, program: str, output: str) -> list[str]:
    """subfinder writing JSON lines to `output`; update checks off (they call home).

    `-d` takes a comma-separated list, but `domain` is a validated hostname: no comma.
    """
    argv = [
        program,
        "-d",
        domain,
        "-oJ",
        "-o",
        output,
        "-silent",
        "-nc",
        "-duc",
        "-max-time",
        str(config.max_enumeration_minutes),
    ]
    if config.sources:
        argv += ["-s", ",".join(config.sources)]
    if config.all_sources:
        argv.append("-all")
    return argv


def dnsx_argv(config: DnsConfig, program: str, resolvers: tuple[str, ...]) -> list[str]:
    """dnsx reading names on stdin and writing JSON lines to stdout.

    `-rcode` lists the codes worth reporting: by default dnsx drops every answer that is not
    NOERROR, which would hide exactly the NXDOMAIN at the end of a dangling CNAME.
    `resolvers` are the nameservers to ask, IP:PORT each.
    """
    argv = [program, "-json", "-silent", "-nc", "-duc", "-resp"]
    argv += [f"-{record}" for record in config.record_types]
    argv += ["-rcode", "noerror,nxdomain,servfail,refused"]
    argv += ["-retry", str(config.retries), "-t", str(config.concurrency)]
    if resolvers:
        argv += ["-r", ",".join(resolvers)]
    return argv


def resolver_addresses(texts: tuple[str, ...]) -> tuple[str, ...]:
    """Each configured resolver as dnsx's `-r` spells it: IP:PORT, [IPv6]:PORT."""
    out = []
    for text in texts:
        host, port = nameserver(text)
        out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return tuple(out)


def _recheck(target: Target) -> Target:
    checked = parse_target(target.value, allowed_kinds=TARGET_KINDS)
    if checked.value != target.value or checked.kind is not target.kind:
        raise TargetError("target", f"{target.value!r} is not in normalised form")
    return checked
