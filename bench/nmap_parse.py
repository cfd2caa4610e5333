"""nmap XML parsing: jetscan against python-libnmap, same file, same run.

Writes a synthetic nmap XML file of about `--size-mb` (many hosts, several ports each, NSE
scripts including structured ssl-cert and vulners output), then parses it once per parser, each
in a fresh child process so no run's heap or peak RSS leaks into another's figures. Peak RSS
growth is the child's peak resident set (VmHWM, reset after imports where the kernel allows)
minus its resident set just before parsing.

jetscan is measured two ways:
- `streaming`: `iter_run`, deriving each host's findings and letting both go, as a worker
  publishing in batches would. This is the parser's working memory, and what the targets
  (2x libnmap's throughput, under 100 MB of growth) are checked against: a 100 MB scan's
  result is larger than one bus message, so the worker has to stream or chunk it anyway.
- `parse_stream`: the whole `ToolOutput` held at once, findings deduplicated. Its memory is
  the size of the result, not of the parser, and is reported so that figure is never hidden.
- `job_spool`: what the scan job does with the output (`workers.spool`): findings and hosts
  written to files as they are parsed, then each result part's findings read back as the
  job reads them to publish. This is the job's memory for the result, whatever its size.

python-libnmap is only the baseline here, never a dependency of the package.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

_MB = 1024 * 1024
# Children import `bench` and `scanners` from the checkout, wherever the bench was started.
_REPO = Path(__file__).resolve().parents[1]
_LIBNMAP_HINT = (
    "python-libnmap is not installed; it is this bench's baseline. Add it to the dev group "
    "(uv add --dev python-libnmap==0.7.3) and rerun."
)
_RUNS = ("jetscan_streaming", "jetscan_parse_stream", "jetscan_job_spool", "libnmap")
_TARGET_RATIO = 2.0
_TARGET_RSS_MB = 100
_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -sT -sV --script=default,vulners -oX bench.xml 10.0.0.0/8" \
start="1700000000" startstr="Tue Nov 14 22:13:20 2023" version="7.93" xmloutputversion="1.05">
<scaninfo type="connect" protocol="tcp" numservices="1000" services="1-1000"/>
<verbose level="1"/>
<debugging level="0"/>
"""
_FOOTER = """<runstats><finished time="1700003600" timestr="Tue Nov 14 23:13:20 2023" \
elapsed="3600.00" summary="bench" exit="success"/><hosts up="{up}" down="0" total="{up}"/>
</runstats>
</nmaprun>
"""
_SERVICES = [
    ("ssh", "OpenSSH", "8.9p1 Ubuntu 3ubuntu0.4", "Ubuntu Linux; protocol 2.0", 22),
    ("http", "nginx", "1.18.0", "Ubuntu", 80),
    ("https", "Apache httpd", "2.4.52", "(Ubuntu)", 443),
    ("mysql", "MySQL", "8.0.35-0ubuntu0.22.04.1", "", 3306),
    ("http-proxy", "Squid http proxy", "5.2", "", 3128),
    ("smtp", "Postfix smtpd", "", "", 25),
]


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    if args.child:
        return _child(args.child, Path(args.file))
    if importlib.util.find_spec("libnmap") is None:
        print(_LIBNMAP_HINT, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="jetscan-bench-") as tmp:
        path = Path(tmp) / "scan.xml"
        with path.open("w", encoding="utf-8") as out:
            _write_scan(out, args.size_mb * _MB, random.Random(args.seed))
        file_mb = path.stat().st_size / _MB
        results = {name: _measure(name, path, file_mb) for name in _RUNS}
    baseline = results["libnmap"]["mb_per_s"]
    streaming = results["jetscan_streaming"]
    targets = {
        "streaming_ratio": round(streaming["mb_per_s"] / baseline, 2),
        "streaming_ratio_at_least": _TARGET_RATIO,
        "streaming_peak_rss_growth_mb": streaming["peak_rss_growth_mb"],
        "streaming_peak_rss_growth_below_mb": _TARGET_RSS_MB,
        "parse_stream_ratio": round(results["jetscan_parse_stream"]["mb_per_s"] / baseline, 2),
        "job_spool_peak_rss_growth_mb": results["jetscan_job_spool"]["peak_rss_growth_mb"],
    }
    print(json.dumps({"file_mb": round(file_mb, 1), **results, "targets": targets}))
    return 0


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench nmap-parse")
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", choices=_RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _measure(name: str, path: Path, file_mb: float) -> dict[str, Any]:
    child = [sys.executable, "-m", "bench.nmap_parse", "--child", name, "--file", str(path)]
    done = subprocess.run(child, capture_output=True, text=True, check=False, cwd=_REPO)
    if done.returncode != 0:
        raise RuntimeError(f"the {name} run failed:\n{done.stderr}")
    figures = json.loads(done.stdout)
    return {
        "mb_per_s": round(file_mb / figures["seconds"], 1),
        "seconds": round(figures["seconds"], 2),
        "peak_rss_growth_mb": round(figures["peak_rss_growth_mb"], 1),
        **figures["counts"],
    }


def _child(name: str, path: Path) -> int:
    parse = _parser(name)
    gc.collect()
    _reset_peak_rss()
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    counts = parse(path)
    seconds = time.perf_counter() - start
    growth = _status_mb("VmHWM") - before
    print(json.dumps({"seconds": seconds, "peak_rss_growth_mb": growth, "counts": counts}))
    return 0


def _parser(name: str) -> Callable[[Path], dict[str, int]]:
    # Each child imports only what its own run needs, before the RSS baseline is taken.
    if name == "libnmap":
        # Untyped third-party module: reached through import_module so its Any stays here.
        nmap_parser = importlib.import_module("libnmap.parser").NmapParser

        def libnmap(path: Path) -> dict[str, int]:
            return {"hosts": len(nmap_parser.parse_fromfile(str(path)).hosts)}

        return libnmap
    from contracts.nmap import Host, NmapRun
    from scanners import TOOLS
    from scanners.nmap.findings import host_findings
    from scanners.nmap.parse import iter_run, parse_stream
    from workers.jobresult import RESULT_PART_BYTES
    from workers.spool import spool

    def jetscan_streaming(path: Path) -> dict[str, int]:
        hosts = findings = 0
        with path.open("rb") as stream:
            for item in iter_run(stream):
                if isinstance(item, Host):
                    hosts += 1
                    findings += len(host_findings(item))
        return {"hosts": hosts, "findings": findings}

    def jetscan_parse_stream(path: Path) -> dict[str, int]:
        with path.open("rb") as stream:
            output = parse_stream(stream)
        # ToolData is the union of every tool's data; nmap's parser always returns NmapRun.
        assert isinstance(output.data, NmapRun)
        return {"hosts": len(output.data.hosts), "findings": len(output.findings)}

    def jetscan_job_spool(path: Path) -> dict[str, int]:
        findings = 0
        with path.open("rb") as stream, tempfile.TemporaryDirectory(dir=path.parent) as into:
            spooled = spool(TOOLS["nmap"], stream, Path(into), RESULT_PART_BYTES)
            for part in range(1, spooled.parts + 1):
                findings += len(spooled.findings(part))
        return {"findings": findings, "parts": spooled.parts}

    runs = {
        "jetscan_streaming": jetscan_streaming,
        "jetscan_parse_stream": jetscan_parse_stream,
        "jetscan_job_spool": jetscan_job_spool,
    }
    return runs[name]


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS, so import-time peaks don't count.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} is not in /proc/self/status")


def _write_scan(out: TextIO, size: int, rng: random.Random) -> None:
    out.write(_HEADER)
    written, hosts = len(_HEADER), 0
    while written < size:
        chunk = "".join(_host(hosts + i, rng) for i in range(500))
        out.write(chunk)
        written += len(chunk)
        hosts += 500
    out.write(_FOOTER.format(up=hosts))


def _host(index: int, rng: random.Random) -> str:
    ports = "".join(_port(*service, rng) for service in rng.sample(_SERVICES, rng.randint(2, 5)))
    address = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
    return _HOST.format(address=address, index=index, ports=ports)


def _port(
    name: str, product: str, version: str, extra: str, number: int, rng: random.Random
) -> str:
    vendor = product.split()[0].lower()
    cpe = f"cpe:/a:{vendor}:{vendor}:{version.split()[0] if version else ''}"
    scripts = _HTTP_TITLE.format(product=product) if name in ("http", "https") else ""
    if name == "https":
        scripts += _SSL_CERT
    if version and rng.random() < 0.5:
        entries = "".join(
            _VULN.format(
                cvss=rng.uniform(0, 10),
                id=f"CVE-20{rng.randint(10, 24)}-{rng.randint(1000, 49999)}",
                exploit="true" if rng.random() < 0.2 else "false",
            )
            for _ in range(rng.randint(1, 6))
        )
        scripts += _VULNERS.format(cpe=cpe, entries=entries)
    return _PORT.format(
        number=number,
        name=name,
        product=product,
        version=version,
        extra=extra,
        cpe=cpe,
        scripts=scripts,
    )


_HOST = (
    '<host starttime="1700000100" endtime="1700000200"><status state="up" reason="syn-ack"'
    ' reason_ttl="0"/>\n<address addr="{address}" addrtype="ipv4"/>\n<hostnames>\n'
    '<hostname name="host-{index}.bench.example" type="PTR"/>\n</hostnames>\n<ports>'
    '<extraports state="closed" count="995"><extrareasons reason="conn-refused" count="995"/>'
    '</extraports>\n{ports}</ports>\n<times srtt="210" rttvar="120" to="100000"/>\n</host>\n'
)
_PORT = (
    '<port protocol="tcp" portid="{number}"><state state="open" reason="syn-ack"'
    ' reason_ttl="0"/><service name="{name}" product="{product}" version="{version}"'
    ' extrainfo="{extra}" method="probed" conf="10"><cpe>{cpe}</cpe></service>{scripts}</port>\n'
)
_HTTP_TITLE = (
    '<script id="http-title" output="Welcome to {product}">'
    '<elem key="title">Welcome to {product}</elem></script>'
)
_SSL_CERT = (
    '<script id="ssl-cert" output="Subject: commonName=bench.example&#xa;'
    'Not valid after: 2025-01-01"><table key="subject"><elem key="commonName">bench.example'
    '</elem></table><table key="issuer"><elem key="commonName">R3</elem>'
    '<elem key="organizationName">Let&apos;s Encrypt</elem></table>'
    '<elem key="sig_algo">sha256WithRSAEncryption</elem><table key="validity">'
    '<elem key="notBefore">2024-10-03T00:00:00</elem>'
    '<elem key="notAfter">2025-01-01T00:00:00</elem></table></script>'
)
_VULNERS = (
    '<script id="vulners" output="&#xa;  {cpe}: &#xa;    (see table)">'
    '<table key="{cpe}">{entries}</table></script>'
)
_VULN = (
    '<table><elem key="cvss">{cvss:.1f}</elem><elem key="id">{id}</elem>'
    '<elem key="is_exploit">{exploit}</elem><elem key="type">cve</elem></table>'
)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
