"""Stand-ins for subfinder and dnsx, which cannot be installed here: small scripts that speak
the part of each program's command line the recon runner uses, and log how they were called.

- subfinder (`-d DOMAIN -oJ -o FILE ...`) writes real corpus lines (for example.com, so out of
  scope for a `localhost` scan) and lines naming subdomains of DOMAIN to FILE, echoes them to
  stdout as subfinder does, and exits with the code it was made with.
- dnsx (`-json -r RESOLVERS -rcode CODES -a -aaaa ...`) reads names on stdin and asks the
  resolver given with -r (the tests' DNS server) with dnspython, printing dnsx's JSON lines:
  only for answers whose code is listed in -rcode and that carry a selected record, as
  dnsx 1.2 does.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

# What the stand-in subfinder reports for a scan of `localhost` (zone.py's zone), besides
# real corpus lines for example.com: a name twice (once in another spelling), an alias whose
# target is gone, a name that does not exist, one resolving outside 127.0.0.0/8, and one that
# only looks like it belongs.
HOSTS = (
    ("www.{domain}", "crtsh"),
    ("mail.{domain}", "crtsh"),
    ("dangling.{domain}", "alienvault"),
    ("nx.{domain}", "alienvault"),
    ("external.{domain}", "crtsh"),
    ("WWW.{domain}.", "alienvault"),
    ("{domain}.evil.example", "alienvault"),
)
# The names of a `localhost` scan that may be resolved, in the order they are first seen.
IN_SCOPE = [
    "localhost",
    "www.localhost",
    "mail.localhost",
    "dangling.localhost",
    "nx.localhost",
    "external.localhost",
]

SUBFINDER = """
import json, sys, time
args = sys.argv[1:]
with open(LOG, "a") as log:
    log.write(json.dumps({"argv": args}) + "\\n")
time.sleep(SLEEP)
domain = args[args.index("-d") + 1]
output = args[args.index("-o") + 1]
lines = open(CORPUS, encoding="utf-8").read().splitlines() if CORPUS else []
for template, source in HOSTS:
    host = template.format(domain=domain)
    lines.append(json.dumps({"host": host, "input": domain, "source": source}))
lines += EXTRA
with open(output, "w", encoding="utf-8") as out:
    out.write("".join(line + "\\n" for line in lines))
sys.stdout.write("".join(line + "\\n" for line in lines))
sys.exit(EXIT)
"""

DNSX = """
import json, sys
from datetime import datetime, timezone
import dns.nameserver, dns.rdatatype, dns.resolver
args = sys.argv[1:]
names = [line.strip() for line in sys.stdin if line.strip()]
with open(LOG, "a") as log:
    log.write(json.dumps({"argv": args, "stdin": names}) + "\\n")
host, _, port = args[args.index("-r") + 1].split(",")[0].rpartition(":")
codes = {"NOERROR"}
if "-rcode" in args:
    codes = {code.upper() for code in args[args.index("-rcode") + 1].split(",")}
types = [t for t in ("a", "aaaa", "cname", "mx", "ns", "txt") if "-" + t in args]
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [dns.nameserver.Do53Nameserver(host.strip("[]"), int(port))]
resolver.lifetime = 5
for name in names:
    record = {"host": name, "resolver": [f"{host}:{port}"]}
    status = "NOERROR"
    for t in types:
        try:
            answer = resolver.resolve(name, t.upper(), raise_on_no_answer=False, search=False)
            response = answer.response
        except dns.resolver.NXDOMAIN as exc:
            status, response = "NXDOMAIN", list(exc.kwargs["responses"].values())[0]
        for rrset in response.answer:
            key = dns.rdatatype.to_text(rrset.rdtype).lower()
            for rd in rrset:
                if key in ("a", "aaaa"):
                    value = rd.address
                elif key == "mx":
                    value = rd.exchange.to_text(omit_final_dot=True)
                elif key == "txt":
                    value = b"".join(rd.strings).decode()
                else:
                    value = rd.target.to_text(omit_final_dot=True)
                if value not in record.setdefault(key, []):
                    record[key].append(value)
    now = datetime.now(timezone.utc).isoformat()
    record.update(has_internal_ips=False, status_code=status, timestamp=now)
    if status in codes and any(record.get(t) for t in types):
        print(json.dumps(record), flush=True)
"""


def _write(path: Path, body: str, constants: dict[str, object]) -> Path:
    header = "".join(f"{name} = {json.dumps(value)}\n" for name, value in constants.items())
    path.write_text(f"#!{sys.executable}\n{header}{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def subfinder(
    folder: Path,
    *,
    corpus: Path | None = None,
    hosts: tuple[tuple[str, str], ...] = (),
    extra: tuple[str, ...] = (),
    exit_code: int = 0,
    sleep: float = 0,
) -> Path:
    """`hosts` are (name template with {domain}, source) pairs; `extra` raw lines to append;
    nothing is written for `sleep` seconds."""
    constants = {
        "LOG": str(folder / "subfinder.log"),
        "CORPUS": str(corpus) if corpus else "",
        "HOSTS": [list(pair) for pair in hosts],
        "EXTRA": list(extra),
        "EXIT": exit_code,
        "SLEEP": sleep,
    }
    return _write(folder / "subfinder", SUBFINDER, constants)


def dnsx(folder: Path) -> Path:
    return _write(folder / "dnsx", DNSX, {"LOG": str(folder / "dnsx.log")})


def calls(program: Path) -> list[dict[str, list[str]]]:
    log = program.with_name(f"{program.name}.log")
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]
