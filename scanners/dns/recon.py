"""The recon runner, `python -m scanners.dns.recon`: the one argv a dns scan job runs.

It runs subfinder, judges every name it reports (`scanners.dns.names`), resolves only the
in-scope ones (with dnsx, or in-process with dnspython), and writes the transcript that
`scanners.dns.parse` reads, flushing each line so a run stopped at its deadline leaves what it
got. Progress goes to stdout, which the job streams as the scan's live console; the tools'
own stdout and stderr go there too. This is the only module of `scanners.dns` that does I/O:
everything it decides is in the pure modules beside it. It reads no environment.

Exit codes: 0 every step completed; 1 a step failed (the transcript names it and keeps what
was found); 2 the arguments are unusable (nothing is written).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.version
import msgspec

from contracts import VERSION
from scanners.dns import transcript
from scanners.dns.command import (
    SUBFINDER_OUTPUT,
    TARGET_KINDS,
    dnsx_argv,
    resolver_addresses,
    subfinder_argv,
)
from scanners.dns.config import DNS_PORT, DnsConfig
from scanners.dns.names import judge
from scanners.dns.parse import DnsxRecord, decode_dnsx, decode_subfinder
from scanners.errors import ConfigError, TargetError
from scanners.scope import Scope
from scanners.targets import parse_target

log = logging.getLogger("dns")

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
# Seconds per query attempt: dnsx's own default.
_QUERY_TIMEOUT = 3.0
# Out-of-scope names listed one by one on the console; the rest are counted.
_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Plan:
    """One run, decided before anything starts."""

    domain: str
    config: DnsConfig
    scope: Scope
    scope_text: str
    subfinder: str
    dnsx: str
    output: Path
    resolver: str
    nameservers: tuple[tuple[str, int], ...]

    @property
    def servers(self) -> tuple[str, ...]:
        return tuple(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.nameservers)


class TranscriptWriter:
    """The output file, one flushed line per entry."""

    def __init__(self, fp: IO[bytes]) -> None:
        self.fp = fp
        self.failed = False

    def write(self, entry: transcript.Entry) -> None:
        self.fp.write(transcript.encode(entry))
        self.fp.flush()

    def fail(self, step: str, message: str) -> None:
        log.error("%s: %s", step, message)
        self.failed = True
        self.write(transcript.Failure(step, message))


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[dns] %(message)s", stream=sys.stdout)
    try:
        plan = _plan(_arguments().parse_args(argv))
    except (ConfigError, TargetError, ValueError, msgspec.DecodeError) as exc:
        log.error("unusable arguments: %s", exc)
        return EXIT_USAGE
    with plan.output.open("wb") as fp:
        out = TranscriptWriter(fp)
        run(plan, out)
    return EXIT_STEP_FAILED if out.failed else EXIT_OK


def run(plan: Plan, out: TranscriptWriter) -> None:
    out.write(
        transcript.Start(
            domain=plan.domain,
            scope=plan.scope_text,
            resolver=plan.resolver,
            resolvers=plan.servers,
            versions=versions(plan.resolver),
        )
    )
    if not plan.scope.domains:
        log.warning("the deployment scope names no domain: every name is out of scope")
    reported = [plan.domain, *_enumerate(plan, out)]
    names = _in_scope(plan, reported)
    out.write(transcript.Resolve(tuple(names)))
    if not names:
        log.info("nothing in scope to resolve")
    elif not plan.resolver:
        out.fail("dnsx", f"{plan.dnsx} not found (resolver: dnsx); nothing was resolved")
    elif not plan.nameservers:
        out.fail(plan.resolver, "no resolvers configured and none in /etc/resolv.conf")
    elif plan.resolver == "dnsx":
        _resolve_with_dnsx(plan, names, out)
    else:
        asyncio.run(_resolve_with_dnspython(plan, names, out))
    out.write(transcript.End())
    log.info("done%s", " with errors" if out.failed else "")


def versions(resolver: str) -> tuple[str, ...]:
    """What this run is, as "name version": the runner itself and, when it resolves
    in-process, dnspython. subfinder and dnsx print their versions only in the banner that
    `-silent` turns off, so theirs are not known here."""
    out = [f"jetscan-dns-recon {VERSION}"]
    if resolver == "dnspython":
        out.append(f"dnspython {dns.version.version}")
    return tuple(out)


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scanners.dns.recon")
    parser.add_argument("--domain", required=True)
    parser.add_argument("--config", required=True, help="the scan's DnsConfig as JSON")
    parser.add_argument("--scope", default="", help="the deployment scope (JETSCAN_SCOPE)")
    parser.add_argument("--subfinder", default="subfinder")
    parser.add_argument("--dnsx", default="dnsx")
    parser.add_argument("--output", required=True, type=Path)
    return parser


def _plan(args: argparse.Namespace) -> Plan:
    config = msgspec.json.decode(args.config, type=DnsConfig)
    # "auto" falls back to dnspython; "dnsx" asked for and missing is a failed step later,
    # after subfinder's names are on record.
    found = shutil.which(args.dnsx) is not None
    if config.resolver == "dnspython" or (config.resolver == "auto" and not found):
        resolver = "dnspython"
    else:
        resolver = "dnsx" if found else ""
    return Plan(
        domain=parse_target(args.domain, allowed_kinds=TARGET_KINDS).value,
        config=config,
        scope=Scope.parse(args.scope),
        scope_text=args.scope,
        subfinder=args.subfinder,
        dnsx=args.dnsx,
        output=args.output,
        resolver=resolver,
        nameservers=_nameservers(config),
    )


def _nameservers(config: DnsConfig) -> tuple[tuple[str, int], ...]:
    """The configured resolvers, else the system's (/etc/resolv.conf), as (address, port)."""
    if config.resolvers:
        return tuple(_split(text) for text in resolver_addresses(config.resolvers))
    try:
        system = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return ()
    return tuple((str(ns), system.port or DNS_PORT) for ns in system.nameservers)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _enumerate(plan: Plan, out: TranscriptWriter) -> list[str]:
    """Run subfinder; copy its lines into the transcript; return the names it reported."""
    path = plan.output.with_name(SUBFINDER_OUTPUT)
    argv = subfinder_argv(plan.config, plan.domain, plan.subfinder, str(path))
    log.info("$ %s", shlex.join(argv))
    try:
        code = subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode
    except OSError as exc:
        out.fail("subfinder", f"could not start {argv[0]}: {exc.strerror or exc}")
        return []
    names = []
    if path.exists():
        with path.open("rb") as fp:
            for raw in fp:
                line = raw.strip()
                if not line:
                    continue
                text = line.decode("utf-8", "replace")
                out.write(transcript.SubfinderLine(text))
                try:
                    names.append(decode_subfinder(text).host)
                except msgspec.DecodeError:
                    continue  # the parser reports it from the transcript
    log.info("subfinder: %d names", len(names))
    if code != 0:
        out.fail("subfinder", f"exited with code {code}")
    return names


def _in_scope(plan: Plan, reported: Iterable[str]) -> list[str]:
    """The names to resolve, in first-seen order; out-of-scope ones are logged, not resolved."""
    keep: dict[str, None] = {}
    skipped: dict[str, str] = {}
    for text in reported:
        name, reason = judge(text, plan.domain, plan.scope)
        if reason:
            skipped.setdefault(name, reason)
        else:
            keep.setdefault(name)
    for name, reason in list(skipped.items())[:_SHOWN]:
        log.info("not resolving %s: %s", name, reason)
    if len(skipped) > _SHOWN:
        log.info("not resolving %d more out-of-scope names", len(skipped) - _SHOWN)
    log.info("%d names in scope, %d out of scope", len(keep), len(skipped))
    return list(keep)


def _resolve_with_dnsx(plan: Plan, names: list[str], out: TranscriptWriter) -> None:
    argv = dnsx_argv(plan.config, plan.dnsx, plan.servers)
    log.info("$ %s  (%d names on stdin)", shlex.join(argv), len(names))
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except OSError as exc:
        out.fail("dnsx", f"could not start {argv[0]}: {exc.strerror or exc}")
        return
    assert proc.stdin is not None
    assert proc.stdout is not None
    # dnsx reads all of stdin before it answers; a thread feeds it while this one reads.
    feeder = threading.Thread(target=_feed, args=(proc.stdin, names), daemon=True)
    feeder.start()
    for raw in proc.stdout:
        line = raw.strip()
        if line:
            text = line.decode("utf-8", "replace")
            out.write(transcript.DnsxLine(text))
            _show(text)
    code = proc.wait()
    feeder.join()
    if code != 0:
        out.fail("dnsx", f"exited with code {code}")


def _feed(stdin: IO[bytes], names: list[str]) -> None:
    try:
        stdin.write("".join(f"{name}\n" for name in names).encode())
        stdin.close()
    except BrokenPipeError:
        log.warning("dnsx stopped reading its input")


def _show(line: str) -> None:
    try:
        record = decode_dnsx(line)
    except msgspec.DecodeError:
        log.warning("dnsx wrote a line that does not decode: %r", line[:200])
        return
    log.info("%s", _summary(record))


def _summary(record: DnsxRecord) -> str:
    parts = [record.host, record.status_code or "?"]
    for field in ("a", "aaaa", "cname", "mx", "ns", "txt"):
        if values := getattr(record, field):
            parts.append(f"{field}={','.join(values)}")
    return " ".join(parts)


async def _resolve_with_dnspython(plan: Plan, names: list[str], out: TranscriptWriter) -> None:
    """dnsx's role in-process: the same queries, written as dnsx's JSON lines."""
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in plan.nameservers]
    resolver.timeout = _QUERY_TIMEOUT
    resolver.lifetime = _QUERY_TIMEOUT * plan.config.retries
    limit = asyncio.Semaphore(plan.config.concurrency)
    log.info("resolving %d names with dnspython via %s", len(names), ", ".join(plan.servers))

    async def lookup(name: str) -> dict[str, Any]:
        async with limit:
            return await _lookup(resolver, name, plan.config.record_types, plan.servers)

    for done in asyncio.as_completed([lookup(name) for name in names]):
        line = msgspec.json.encode(await done)
        text = line.decode()
        out.write(transcript.DnsxLine(text))
        _show(text)


async def _lookup(
    resolver: dns.asyncresolver.Resolver,
    name: str,
    record_types: Iterable[str],
    servers: tuple[str, ...],
) -> dict[str, Any]:
    """One name's records as dnsx reports them: values by type, and one status code.

    The status is NXDOMAIN when any query says so (a CNAME query answers NOERROR for an
    alias whose target is gone, its A query NXDOMAIN), else the first failure, else NOERROR.
    """
    record: dict[str, Any] = {"host": name, "resolver": list(servers)}
    statuses: list[str] = []
    for record_type in record_types:
        wanted = dns.rdatatype.from_text(record_type)
        response: dns.message.Message | None = None
        try:
            answer = await resolver.resolve(name, wanted, search=False, raise_on_no_answer=False)
            response = answer.response
            statuses.append("NOERROR")
        except dns.resolver.NXDOMAIN as exc:
            statuses.append("NXDOMAIN")
            responses: dict[Any, dns.message.Message] = exc.kwargs.get("responses", {})
            response = next(iter(responses.values()), None)
        except dns.resolver.NoNameservers:
            statuses.append("SERVFAIL")
        except dns.exception.Timeout:
            statuses.append("TIMEOUT")
        if response is not None:
            _collect(record, response, wanted)
    record["status_code"] = _status(statuses)
    return record


def _collect(record: dict[str, Any], response: dns.message.Message, wanted: int) -> None:
    for rrset in response.answer:
        if rrset.rdtype not in (wanted, dns.rdatatype.CNAME):
            continue
        field = dns.rdatatype.to_text(rrset.rdtype).lower()
        values: list[str] = record.setdefault(field, [])
        for rdata in rrset:
            for value in _values(rdata):
                if value not in values:
                    values.append(value)


def _values(rdata: Any) -> list[str]:
    """An rdata's values as dnsx prints them: names without the final dot, TXT by string."""
    match dns.rdatatype.to_text(rdata.rdtype):
        case "A" | "AAAA":
            return [str(rdata.address)]
        case "CNAME" | "NS":
            return [str(rdata.target.to_text(omit_final_dot=True))]
        case "MX":
            return [str(rdata.exchange.to_text(omit_final_dot=True))]
        case "TXT":
            return [part.decode("utf-8", "backslashreplace") for part in rdata.strings]
    return []


def _status(statuses: list[str]) -> str:
    if "NXDOMAIN" in statuses:
        return "NXDOMAIN"
    return next((s for s in statuses if s != "NOERROR"), "NOERROR")


if __name__ == "__main__":
    sys.exit(main())
