"""Small nmap XML documents for the job's result tests, with as many hosts as a test needs."""

from __future__ import annotations

import re

ONE_PORT = b"""<?xml version="1.0"?>
<nmaprun scanner="nmap" args="nmap -p 22 127.0.0.1" start="1700000000" version="7.93"
 xmloutputversion="1.05">
<host><status state="up" reason="conn-refused"/><address addr="127.0.0.1" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack"/>
<service name="ssh" product="OpenSSH" version="9.2p1"/></port></ports></host>
<runstats><finished time="1700000001" elapsed="0.5" exit="success"/>
<hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"""
_HOST = re.search(rb"<host>.*?</host>", ONE_PORT, re.S)
assert _HOST is not None
HOST = _HOST[0]


def with_hosts(hosts: bytes) -> bytes:
    """`ONE_PORT` with its one host replaced by `hosts`."""
    return ONE_PORT.replace(HOST, hosts)


def scan_of(n: int) -> bytes:
    """A scan of `n` hosts (10.0.0.0 on), each with port 22 open."""
    addresses = (f"10.0.{i // 256}.{i % 256}".encode() for i in range(n))
    return with_hosts(b"".join(HOST.replace(b"127.0.0.1", a) for a in addresses))
