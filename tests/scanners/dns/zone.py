"""A DNS server on 127.0.0.1 for the recon tests: a small zone under `localhost`.

It answers the way a recursive resolver would for its own data: CNAMEs are followed inside
the zone, a chain that ends at a missing name answers NXDOMAIN with the CNAMEs it passed, and
every query it receives is recorded so a test can prove what was (never) asked.
"""

from __future__ import annotations

import threading
from typing import Any

from dnslib import AAAA, CNAME, MX, NS, QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

# name -> record type -> values. `dangling` is an alias whose target does not exist;
# `external` resolves outside the test scope's 127.0.0.0/8.
RECORDS: dict[str, dict[str, list[str]]] = {
    "localhost": {
        "A": ["127.0.0.1"],
        "AAAA": ["::1"],
        "MX": ["mail.localhost"],
        "NS": ["ns1.localhost"],
        "TXT": ["v=spf1 -all"],
    },
    "www.localhost": {"CNAME": ["web.localhost"]},
    "web.localhost": {"A": ["127.0.0.2"]},
    "mail.localhost": {"A": ["127.0.0.3"], "TXT": ["mail server"]},
    "ns1.localhost": {"A": ["127.0.0.4"]},
    "dangling.localhost": {"CNAME": ["gone.localhost"]},
    "external.localhost": {"A": ["192.0.2.10"]},
}
_RDATA = {"A": A, "AAAA": AAAA, "CNAME": CNAME, "NS": NS, "TXT": TXT}


class Zone(BaseResolver):
    def __init__(self) -> None:
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((qname, qtype))
        name = qname
        for _ in range(8):
            node = RECORDS.get(name)
            if node is None:
                reply.header.rcode = RCODE.NXDOMAIN
                break
            if "CNAME" in node and qtype != "CNAME":
                target = node["CNAME"][0]
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(target), ttl=60))
                name = target
                continue
            for value in node.get(qtype, []):
                reply.add_answer(RR(name, getattr(QTYPE, qtype), rdata=_rdata(qtype, value)))
            break
        return reply

    def asked(self) -> set[str]:
        with self._lock:
            return {name for name, _ in self.queries}


def _rdata(qtype: str, value: str) -> Any:
    if qtype == "MX":
        return MX(value, 10)
    return _RDATA[qtype](value)


class ZoneServer:
    """The zone served over UDP on 127.0.0.1 at a free port, in a thread."""

    def __init__(self) -> None:
        self.zone = Zone()
        self.server = DNSServer(
            self.zone,
            address="127.0.0.1",
            port=0,
            logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False),
        )
        self.port: int = self.server.server.server_address[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> ZoneServer:
        self.server.start_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.server.server.server_close()
